# g.nome's services on Nomad, two instances of each, all from the image
# built by deploy/Dockerfile, in production mode. Needs:
#
#   - the JetStream cluster of nats.nomad.hcl (found through its Nomad service
#     "nats"), and a MongoDB replica set;
#   - the job's Nomad variables. A task reads only its own job's paths
#     (nomad/jobs/gnome, nomad/jobs/gnome/<group>, nomad/jobs/gnome/<group>/<task>),
#     so every secret lives under them:
#
#       nomad var put nomad/jobs/gnome \
#         secret_key="$(openssl rand -hex 32)" \
#         mongo_uri='mongodb://user:pass@db1,db2,db3/?replicaSet=rs0&retryWrites=true&w=majority' \
#         nats_password_edge=... nats_password_auth=... nats_password_upload=... \
#         nats_password_export=... nats_password_actorworker=...
#       nomad var put nomad/jobs/gnome/auth admin_password='a long passphrase'
#
#     The nats_password_* are the bus users' passwords, one per service, the
#     same as in the NATS job's variables (see nats.nomad.hcl): every service
#     connects as its own user, held to that service's subjects.
#
#     Optional, S3-compatible export storage (Backblaze B2, MinIO, S3), read
#     by the export group only; without it exports stay in JetStream:
#
#       nomad var put nomad/jobs/gnome/export key_id=... key=... bucket=... endpoint=...
#
#   - a load balancer in front of the "gnome-edge" service that terminates TLS
#     and sets X-Forwarded-Proto/-For; list its addresses in trusted_proxies.
#
#   nomad job run -var image=registry.example.com/gnome:0.1.0 \
#     -var public_url=https://gnome.example -var admin_email=admin@gnome.example \
#     deploy/nomad/gnome.nomad.hcl

variable "image" {
  type        = string
  description = "The g.nome image (deploy/Dockerfile), pushed where the clients can pull it."
  default     = "gnome:latest"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "admin_email" {
  type        = string
  description = "ADMIN_EMAIL: the first admin, created once by auth."
  default     = "admin@example.com"
}

variable "public_url" {
  type        = string
  description = "PUBLIC_URL: the platform's https origin (plain-HTTP requests are redirected there)."
  default     = ""
}

variable "experiment_origin" {
  type        = string
  description = "EXPERIMENT_ORIGIN: the experiments' origin template, https://{slug}.<domain>."
  default     = ""
}

variable "trusted_proxies" {
  type        = string
  description = "TRUSTED_PROXIES: the load balancers' addresses or CIDRs."
  default     = ""
}

variable "metrics_allowed_cidrs" {
  type        = string
  description = "METRICS_ALLOWED_CIDRS: where Prometheus scrapes from."
  default     = ""
}

# Read by two services each (the edge decides the routes and the limit,
# auth and upload enforce them): one variable, given to both.
variable "enable_registration" {
  type        = bool
  description = "ENABLE_REGISTRATION, for the edge and auth."
  default     = false
}

variable "max_upload_size_mb" {
  type        = number
  description = "MAX_UPLOAD_SIZE_MB, for the edge and upload."
  default     = 100
}

locals {
  # Shared by every task: where NATS and MongoDB are, the signing key, and
  # the task's own bus user (__SERVICE__ is replaced by each task).
  # Re-rendered (and the task restarted) when a NATS node or a variable changes.
  bus_env = <<-EOT
    NATS_URL={{ range $i, $s := nomadService "nats" }}{{ if $i }},{{ end }}nats://{{ .Address }}:{{ .Port }}{{ end }}
    {{ with nomadVar "nomad/jobs/gnome" -}}
    MONGO_URI={{ .mongo_uri }}
    SECRET_KEY={{ .secret_key }}
    NATS_USER=__SERVICE__
    NATS_PASSWORD={{ .nats_password___SERVICE__ }}
    {{- end }}
  EOT

  common_env = {
    G_NOME_ENV                = "production"
    NATS_REPLICAS             = "3"
    PROVISION_TIMEOUT_SECONDS = "60"
    MONGO_DB                  = "gnome"
    LOG_FORMAT                = "json"
    LOG_LEVEL                 = "INFO"
    SHUTDOWN_GRACE_SECONDS    = "20"
    # /metrics and /health of each instance, on the group's "metrics" port.
    METRICS_ADDR          = "0.0.0.0:9464"
    METRICS_ALLOWED_CIDRS = var.metrics_allowed_cidrs
  }

  registration = { ENABLE_REGISTRATION = tostring(var.enable_registration) }
  upload_limit = { MAX_UPLOAD_SIZE_MB = tostring(var.max_upload_size_mb) }
}

job "gnome" {
  datacenters = var.datacenters
  type        = "service"

  # One instance at a time; a new one must be healthy before an old one stops.
  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "edge" {
    count = 2

    network {
      port "http" {
        to = 8080
      }
      port "metrics" {
        to = 9464
      }
    }

    # Deregister from the load balancer before the task is signalled.
    shutdown_delay = "5s"

    service {
      name     = "gnome-edge"
      provider = "nomad"
      port     = "http"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    # The request `edge probe` makes (Nomad's own service checks run no
    # command inside the task): /health on METRICS_ADDR. Prometheus finds
    # every instance by this service.
    service {
      name     = "gnome-edge-metrics"
      provider = "nomad"
      port     = "metrics"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "5s"
      }
    }

    task "edge" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/edge"]
        ports      = ["http", "metrics"]
      }

      env = merge(local.common_env, local.registration, local.upload_limit, {
        HTTP_ADDR         = "0.0.0.0:8080"
        TRUSTED_PROXIES   = var.trusted_proxies
        PUBLIC_URL        = var.public_url
        EXPERIMENT_ORIGIN = var.experiment_origin
      })

      template {
        data        = replace(local.bus_env, "__SERVICE__", "edge")
        destination = "secrets/bus.env"
        env         = true
        change_mode = "restart"
      }

      # Above SHUTDOWN_GRACE_SECONDS: requests in flight finish on stop.
      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }

  group "auth" {
    count = 2

    network {
      port "metrics" {
        to = 9464
      }
    }

    service {
      name     = "gnome-auth-metrics"
      provider = "nomad"
      port     = "metrics"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "5s"
      }
    }

    task "auth" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/auth"]
        ports      = ["metrics"]
      }

      env = merge(local.common_env, local.registration, {
        ADMIN_EMAIL = var.admin_email
      })

      template {
        data        = replace(local.bus_env, "__SERVICE__", "auth")
        destination = "secrets/bus.env"
        env         = true
        change_mode = "restart"
      }

      # Only auth creates the first admin, so only its group's path holds
      # the password.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/gnome/auth" }}ADMIN_PASSWORD={{ .admin_password }}{{ end }}
        EOT
        destination = "secrets/admin.env"
        env         = true
        change_mode = "restart"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 300
        memory = 192
      }
    }
  }

  group "upload" {
    count = 2

    network {
      port "metrics" {
        to = 9464
      }
    }

    service {
      name     = "gnome-upload-metrics"
      provider = "nomad"
      port     = "metrics"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "5s"
      }
    }

    task "upload" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/upload"]
        ports      = ["metrics"]
      }

      env = merge(local.common_env, local.upload_limit)

      template {
        data        = replace(local.bus_env, "__SERVICE__", "upload")
        destination = "secrets/bus.env"
        env         = true
        change_mode = "restart"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 384
      }
    }
  }

  group "export" {
    count = 2

    network {
      port "metrics" {
        to = 9464
      }
    }

    service {
      name     = "gnome-export-metrics"
      provider = "nomad"
      port     = "metrics"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "5s"
      }
    }

    task "export" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/export"]
        ports      = ["metrics"]
      }

      env = merge(local.common_env, {
        EXPORT_RETENTION_HOURS      = "24"
        EXPORT_LINK_TTL_SECONDS     = "900"
        EXPORT_JOB_ACK_WAIT_SECONDS = "30"
      })

      template {
        data        = replace(local.bus_env, "__SERVICE__", "export")
        destination = "secrets/bus.env"
        env         = true
        change_mode = "restart"
      }

      # S3-compatible export storage when the variable nomad/jobs/gnome/export
      # exists (keys key_id, key, bucket, endpoint): the export group's own
      # path, which its tasks may read. nomadVarList does not block on a
      # missing variable, nomadVar would; the prefix also lists deeper
      # paths, hence the exact match.
      template {
        data        = <<-EOT
          {{ range nomadVarList "nomad/jobs/gnome/export" }}{{ if eq .Path "nomad/jobs/gnome/export" }}{{ with nomadVar .Path -}}
          B2_APPLICATION_KEY_ID={{ .key_id }}
          B2_APPLICATION_KEY={{ .key }}
          B2_BUCKET_NAME={{ .bucket }}
          B2_ENDPOINT_URL={{ .endpoint }}
          {{- end }}{{ end }}{{ end }}
        EOT
        destination = "secrets/b2.env"
        env         = true
        change_mode = "restart"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 384
      }
    }
  }

  group "actorworker" {
    count = 2

    network {
      port "metrics" {
        to = 9464
      }
    }

    service {
      name     = "gnome-actorworker-metrics"
      provider = "nomad"
      port     = "metrics"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "5s"
      }
    }

    task "actorworker" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/actorworker"]
        ports      = ["metrics"]
      }

      env = local.common_env

      template {
        data        = replace(local.bus_env, "__SERVICE__", "actorworker")
        destination = "secrets/bus.env"
        env         = true
        change_mode = "restart"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 1000
        memory = 512
      }
    }
  }
}
