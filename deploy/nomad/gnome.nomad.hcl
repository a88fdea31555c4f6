# g.nome's services on Nomad, one group per service, all from the image built
# by deploy/Dockerfile. Needs:
#
#   - the JetStream cluster of nats.nomad.hcl (found through its Nomad service
#     "nats"), and a MongoDB replica set;
#   - the job's Nomad variables (readable by this job's tasks only):
#
#       nomad var put nomad/jobs/gnome \
#         secret_key="$(openssl rand -hex 32)" \
#         admin_password='a long passphrase' \
#         mongo_uri='mongodb://user:pass@db1,db2,db3/?replicaSet=rs0' \
#         nats_password_edge=... nats_password_auth=... nats_password_upload=... \
#         nats_password_export=... nats_password_actorworker=...
#
#     The nats_password_* are the bus users' passwords, one per service, the
#     same as in the NATS job's variables (see nats.nomad.hcl): every service
#     connects as its own user, held to that service's subjects.
#
#   - a load balancer in front of the "gnome-edge" service that terminates TLS
#     and sets X-Forwarded-Proto/-For; list its addresses in trusted_proxies.
#
#   nomad job run -var image=registry.example.com/gnome:0.1.0 deploy/nomad/gnome.nomad.hcl

variable "image" {
  type        = string
  description = "The g.nome image (deploy/Dockerfile), pushed where the clients can pull it."
  default     = "gnome:latest"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
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
    G_NOME_ENV             = "production"
    NATS_REPLICAS          = "3"
    MONGO_DB               = "gnome"
    LOG_FORMAT             = "json"
    LOG_LEVEL              = "INFO"
    SHUTDOWN_GRACE_SECONDS = "20"
  }
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

    task "edge" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/edge"]
        ports      = ["http"]
      }

      env = merge(local.common_env, {
        HTTP_ADDR             = "0.0.0.0:8080"
        TRUSTED_PROXIES       = var.trusted_proxies
        METRICS_ALLOWED_CIDRS = var.metrics_allowed_cidrs
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

    task "auth" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/auth"]
      }

      env = merge(local.common_env, {
        ADMIN_EMAIL         = "admin@example.com"
        ENABLE_REGISTRATION = "false"
      })

      template {
        data        = replace(local.bus_env, "__SERVICE__", "auth")
        destination = "secrets/bus.env"
        env         = true
        change_mode = "restart"
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/gnome" }}ADMIN_PASSWORD={{ .admin_password }}{{ end }}
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

    task "upload" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/upload"]
      }

      env = merge(local.common_env, {
        MAX_UPLOAD_SIZE_MB = "100"
      })

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

    task "export" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/export"]
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

      # S3-compatible export storage (Backblaze B2, MinIO, S3) when the
      # variable nomad/jobs/gnome/b2 exists (keys key_id, key, bucket,
      # endpoint); without it, exports stay in the JetStream object store.
      # nomadVarList does not block on a missing variable, nomadVar would.
      template {
        data        = <<-EOT
          {{ range nomadVarList "nomad/jobs/gnome/b2" }}{{ with nomadVar .Path -}}
          B2_APPLICATION_KEY_ID={{ .key_id }}
          B2_APPLICATION_KEY={{ .key }}
          B2_BUCKET_NAME={{ .bucket }}
          B2_ENDPOINT_URL={{ .endpoint }}
          {{- end }}{{ end }}
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

    task "actorworker" {
      driver = "docker"

      config {
        image      = var.image
        entrypoint = ["/usr/local/bin/actorworker"]
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
