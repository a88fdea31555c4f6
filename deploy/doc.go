// Package deploy holds no code: its tests check the deployment files
// beside it (docker-compose.yml, deploy/nomad/*.nomad.hcl) against the
// settings the binaries require, and start each binary with the
// environment those files give it.
package deploy
