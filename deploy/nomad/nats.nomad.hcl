# A three-node NATS JetStream cluster for g.nome: a sketch to adapt, not a
# hardened deployment (add TLS and accounts, size the disks). One server per
# client node, each with its own host volume, found by the others through
# Nomad service discovery. g.nome's services find the cluster through the
# Nomad service "nats" and run with NATS_REPLICAS=3.
#
# Each client node needs a host volume in its Nomad agent config:
#
#   client {
#     host_volume "nats-data" {
#       path      = "/var/lib/nats"
#       read_only = false
#     }
#   }

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

job "nats" {
  datacenters = var.datacenters
  type        = "service"

  # Replace one server at a time; JetStream keeps quorum with two of three.
  update {
    max_parallel     = 1
    min_healthy_time = "30s"
    healthy_deadline = "5m"
  }

  group "nats" {
    count = 3

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      # Static ports on the host network: routes must be reachable node to node.
      port "client" {
        static = 4222
      }
      port "cluster" {
        static = 6222
      }
      port "monitor" {
        static = 8222
      }
    }

    volume "data" {
      type      = "host"
      source    = "nats-data"
      read_only = false
    }

    service {
      name     = "nats"
      provider = "nomad"
      port     = "client"

      check {
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "nats-cluster"
      provider = "nomad"
      port     = "cluster"
    }

    task "nats" {
      driver = "docker"

      config {
        image        = "nats:2.11-alpine"
        network_mode = "host"
        command      = "nats-server"
        args         = ["--config", "/local/nats.conf"]
      }

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      template {
        destination = "local/nats.conf"
        # Routes follow the cluster's members; nats-server reloads them on SIGHUP.
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          # server_name must stay the same across restarts: JetStream's Raft
          # groups know each server by it.
          server_name: "{{ env "node.unique.name" }}"
          listen: 0.0.0.0:4222
          http: 0.0.0.0:8222
          # Matches the embedded server: KV values up to 1 MiB plus headers.
          max_payload: 8MB

          jetstream {
            store_dir: /data
            # fsync before acknowledging. The NATS default (every 2 minutes) can
            # lose acknowledged writes when nodes crash or lose power together
            # (Jepsen, NATS 2.12.1, 2025).
            sync_interval: always
            max_file_store: 50GB
          }

          cluster {
            name: gnome
            listen: 0.0.0.0:6222
            routes: [
          {{- range nomadService "nats-cluster" }}
              nats-route://{{ .Address }}:{{ .Port }}
          {{- end }}
            ]
          }
        EOT
      }

      # Time to flush and leave the cluster cleanly on stop.
      kill_timeout = "60s"

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
