package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wholeDays matches the "14d" form of a duration.
var wholeDays = regexp.MustCompile(`^([0-9]+)d$`)

// ParseDuration parses a duration in Go syntax ("90s", "15m", "1h30m",
// "336h") or as a whole number of days ("14d", 24 hours each). Negative
// durations are refused; "0" is zero.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if m := wholeDays.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("invalid duration %q: too large", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number and a unit, like \"30s\", \"15m\", \"336h\" or \"14d\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return d, nil
}

// FormatDays formats d as whole days when it is a multiple of 24 hours
// ("14d"), and in Go syntax otherwise; ParseDuration reads both back.
func FormatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// errNotDuration is reported for YAML values that cannot be a duration.
var errNotDuration = errors.New(`expected a duration like "30s", "15m" or "14d"`)
