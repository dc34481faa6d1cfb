package config

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Size is a number of bytes. In configuration it is written with SI or IEC
// units: MB is 10^6 bytes and MiB is 2^20, as the design document requires.
type Size int64

// sizeUnits lists every accepted unit, largest first, so that String can
// pick the biggest unit that gives a short number; B must be last.
var sizeUnits = []struct {
	name  string
	bytes uint64
}{
	{"TiB", 1 << 40}, {"TB", 1e12},
	{"GiB", 1 << 30}, {"GB", 1e9},
	{"MiB", 1 << 20}, {"MB", 1e6},
	{"KiB", 1 << 10}, {"KB", 1e3},
	{"B", 1},
}

var sizeSyntax = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) *([A-Za-z]*)$`)

// ParseSize parses a size such as "5GB", "5 GB", "1.5GiB", "500mb" or "1024"
// (bytes). Units are case-insensitive; the result must be a whole number of
// bytes that fits in an int64.
func ParseSize(s string) (Size, error) {
	m := sizeSyntax.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: want a number and a unit, like \"5GB\"", s)
	}
	unit := uint64(1)
	if m[2] != "" {
		unit = 0
		for _, u := range sizeUnits {
			if strings.EqualFold(m[2], u.name) {
				unit = u.bytes
			}
		}
		if unit == 0 {
			return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, m[2])
		}
	}
	// big.Rat keeps "1.5GiB" exact. sizeSyntax admits only plain decimals,
	// so SetString cannot fail, nor be made slow with a huge exponent.
	n, _ := new(big.Rat).SetString(m[1])
	n.Mul(n, new(big.Rat).SetInt(new(big.Int).SetUint64(unit)))
	switch {
	case !n.IsInt():
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	case !n.Num().IsInt64():
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n.Num().Int64()), nil
}

// UnmarshalYAML accepts a string ("5GB") or a plain integer (bytes).
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" && n.Tag != "!!int" {
		return fmt.Errorf("expected a size like \"5GB\", got %s", describe(n))
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String formats s in the largest unit that expresses it exactly with at
// most two decimals: 5e9 is "5 GB", 5<<30 is "5 GiB", 1536 is "1.5 KiB" and
// 1234567 is "1234567 B". The result always parses back to s.
func (s Size) String() string {
	if s < 0 {
		return strconv.FormatInt(int64(s), 10) + " B"
	}
	v := uint64(s)
	for _, u := range sizeUnits[:len(sizeUnits)-1] { // all but B
		if u.bytes > v {
			continue
		}
		for d := 0; d <= 2; d++ {
			if exactDecimals(v, u.bytes, d) {
				return formatDecimal(v, u.bytes, d) + " " + u.name
			}
		}
	}
	return strconv.FormatUint(v, 10) + " B"
}

// formatDecimal prints v/unit with d decimals, without floating point.
func formatDecimal(v, unit uint64, d int) string {
	scale := uint64(math.Pow10(d))
	hi, lo := bits.Mul64(v, scale)
	q, _ := bits.Div64(hi, lo, unit) // hi < unit: v < 2^63 and scale ≤ 100
	num := strconv.FormatUint(q/scale, 10)
	if d > 0 {
		num += fmt.Sprintf(".%0*d", d, q%scale)
	}
	return num
}

// exactDecimals reports whether v/unit is exact with d decimal places, using
// 128-bit arithmetic because v*10^d can overflow 64 bits.
func exactDecimals(v, unit uint64, d int) bool {
	hi, lo := bits.Mul64(v, uint64(math.Pow10(d)))
	_, rem := bits.Div64(hi%unit, lo, unit)
	return rem == 0
}
