//go:build tools

// Package etcd pins the etcd server built into bin/.
package etcd

import _ "go.etcd.io/etcd/server/v3"
