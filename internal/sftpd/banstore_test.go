package sftpd_test

import (
	"testing"

	"github.com/airlock-gw/airlock/internal/sftpd"
	"github.com/airlock-gw/airlock/internal/sftpd/banstest"
)

func TestMemoryBansConformance(t *testing.T) {
	t.Parallel()
	banstest.Run(t, func(*testing.T) sftpd.BanStore { return sftpd.NewMemoryBans() })
}
