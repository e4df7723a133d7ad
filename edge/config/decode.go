package config

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The decoder walks the generic map that viper produced and fills typed
// fields, reporting unknown keys and type mismatches by their full path.
// It is ours rather than mapstructure's so that every problem carries the
// key path operators see in the file and all of them are collected.

var (
	durationType = reflect.TypeFor[time.Duration]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	levelType    = reflect.TypeFor[slog.Level]()
	fractionType = reflect.TypeFor[Fraction]()
)

// defaulter is implemented by list elements whose omitted keys have defaults.
type defaulter interface{ setDefaults() }

func isScalar(t reflect.Type) bool {
	return t == durationType || t == prefixType || t == levelType || t == fractionType
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// decode stores in into out. A nil in (an empty YAML value) keeps the default.
func (p *problems) decode(key string, in any, out reflect.Value) {
	if in == nil {
		return
	}
	switch out.Type() {
	case durationType:
		d, ok := toDuration(in)
		if !ok {
			p.add(key, show(in)+" is not a duration (e.g. 3s, 30m, 1h)")
			return
		}
		out.SetInt(int64(d))
		return
	case prefixType:
		s, _ := in.(string)
		pfx, ok := ParseClientAddress(s)
		if !ok {
			p.add(key, show(in)+" is not an IP address or CIDR prefix")
			return
		}
		out.Set(reflect.ValueOf(pfx))
		return
	case fractionType:
		f, pct, ok := toFraction(in)
		switch {
		case !ok:
			p.add(key, show(in)+" is not a percentage (e.g. 25%) or a fraction (e.g. 0.25)")
			return
		case !pct && f > 1:
			// 25 meant as 25% would otherwise be reported as 2500%.
			p.add(key, show(in)+" is more than 1; write a percentage (e.g. 25%) or a fraction (e.g. 0.25)")
			return
		}
		out.SetFloat(f)
		return
	case levelType:
		s, _ := in.(string)
		l, ok := levels[strings.ToLower(s)]
		if !ok {
			p.add(key, show(in)+" is not one of debug, info, warn, error")
			return
		}
		out.Set(reflect.ValueOf(l))
		return
	}

	switch out.Kind() {
	case reflect.Struct:
		p.decodeStruct(key, in, out)
	case reflect.Slice:
		p.decodeSlice(key, in, out)
	case reflect.String:
		switch x := in.(type) {
		case string:
			out.SetString(x)
		case int, int64, uint64: // VLAN 41, a numeric secret
			out.SetString(fmt.Sprint(x))
		default:
			p.add(key, "expected a string, got "+show(in))
		}
	case reflect.Bool:
		b, ok := in.(bool)
		if s, isString := in.(string); isString { // from the environment
			var err error
			b, err = strconv.ParseBool(s)
			ok = err == nil
		}
		if !ok {
			p.add(key, "expected true or false, got "+show(in))
			return
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, ok := toInt(in)
		if !ok || out.OverflowInt(n) {
			p.add(key, "expected an integer, got "+show(in))
			return
		}
		out.SetInt(n)
	default:
		p.add(key, fmt.Sprintf("cannot decode into %s", out.Type())) // a Config type the decoder doesn't know
	}
}

func (p *problems) decodeStruct(key string, in any, out reflect.Value) {
	m, ok := toMap(in)
	if !ok {
		p.add(key, "expected a mapping, got "+show(in))
		return
	}
	t := out.Type()
	known := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "" || !f.IsExported() {
			continue
		}
		known[name] = true
		if why := f.Tag.Get("refused"); why != "" {
			if v, ok := m[name]; ok && v != nil {
				p.add(join(key, name), why)
			}
			continue
		}
		if v, ok := m[name]; ok {
			p.decode(join(key, name), v, out.Field(i))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !known[k] {
			p.add(join(key, keyName(k)), "unknown key")
		}
	}
}

func (p *problems) decodeSlice(key string, in any, out reflect.Value) {
	var items []any
	switch x := in.(type) {
	case []any:
		items = x
	case string: // "a,b" from the environment, or one item written without brackets
		if out.Type().Elem().Kind() != reflect.String {
			p.add(key, "expected a list, got "+show(in))
			return
		}
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	default:
		p.add(key, "expected a list, got "+show(in))
		return
	}
	s := reflect.MakeSlice(out.Type(), len(items), len(items))
	for i, item := range items {
		e := s.Index(i)
		if d, ok := e.Addr().Interface().(defaulter); ok {
			d.setDefaults()
		}
		p.decode(fmt.Sprintf("%s[%d]", key, i), item, e)
	}
	out.Set(s)
}

var levels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func toMap(in any) (map[string]any, bool) {
	switch x := in.(type) {
	case map[string]any:
		return x, true
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[fmt.Sprint(k)] = v
		}
		return m, true
	}
	return nil, false
}

func toInt(in any) (int64, bool) {
	switch x := in.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		return int64(x), x <= math.MaxInt64
	case float64: // YAML 1e6
		return int64(x), x == math.Trunc(x) && math.Abs(x) < 1<<62
	case string: // from the environment
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func toDuration(in any) (time.Duration, bool) {
	switch x := in.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		return d, err == nil
	case int:
		return 0, x == 0 // 0 needs no unit
	}
	return 0, false
}

// toFraction reads "25%" as 0.25 (pct true) and a plain number, from
// YAML or as text from the environment, as it is; the range is validate's.
func toFraction(in any) (f float64, pct, ok bool) {
	switch x := in.(type) {
	case string:
		s := strings.TrimSpace(x)
		pct = strings.HasSuffix(s, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false, false
		}
		if pct {
			f /= 100
		}
		return f, pct, true
	case float64:
		return x, false, !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	n, ok := toInt(in)
	return float64(n), false, ok
}

// ParseClientAddress accepts what radius.clients[].address takes: an IP (a
// host prefix) or a CIDR prefix, masked. IPv4-mapped IPv6 becomes IPv4 so
// that it matches unmapped source addresses. The cloud's client list goes
// through it too.
func ParseClientAddress(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// keyName quotes a key that would not read as one in a message.
func keyName(k string) string {
	if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' }) {
		return strconv.Quote(k)
	}
	return k
}

// show renders a YAML value for an error message.
func show(in any) string {
	switch x := in.(type) {
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(in)
}
