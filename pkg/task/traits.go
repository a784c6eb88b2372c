package task

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Traits are what a runner offers: trait names with a version or value,
// empty for a plain flag ("gpu"). Runners detect os, arch, cpus and
// memory (MiB) and add the ones DROVER_TRAITS declares
// ("python=3.11,gpu").
type Traits map[string]string

// Requires are what a task needs of its runner: trait names with a
// constraint on the trait's value, empty when the trait only has to be
// there. A constraint is one or more comparisons joined by commas, each
// an operator (>=, >, <=, <, ==, !=; none means ==) and a value:
// ">=3.10", ">=3.10,<4", "3.11", "linux". Values compare as dotted
// numbers when both sides are ("3.10" > "3.9"), else as strings.
type Requires map[string]string

var traitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// MaxRequires bounds the requirements of one task.
const MaxRequires = 32

// ParseTraits reads a DROVER_TRAITS list: name or name=value items
// separated by commas.
func ParseTraits(s string) (Traits, error) {
	t := Traits{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, _ := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !traitName.MatchString(name) {
			return nil, fmt.Errorf("%q is not a trait name (letters, digits and _.- up to 64 characters)", name)
		}
		t[name] = value
	}
	return t, nil
}

// String is the canonical DROVER_TRAITS form of t, names sorted.
func (t Traits) String() string {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		if v := t[n]; v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}

// SetRequires sets st's requirements, in both their forms.
func (st *Status) SetRequires(r Requires) {
	st.Requires, st.RequiresText = r, ""
	if len(r) > 0 {
		st.RequiresText = r.String()
	}
}

// comparison is one operator and value of a constraint.
type comparison struct{ op, value string }

var operators = []string{">=", "<=", "==", "!=", ">", "<"}

// parseConstraint splits a constraint into its comparisons.
func parseConstraint(c string) ([]comparison, error) {
	c = strings.TrimSpace(c)
	if c == "" {
		return nil, nil
	}
	var out []comparison
	for part := range strings.SplitSeq(c, ",") {
		part = strings.TrimSpace(part)
		op := "=="
		for _, o := range operators {
			if strings.HasPrefix(part, o) {
				op, part = o, strings.TrimSpace(part[len(o):])
				break
			}
		}
		if part == "" || strings.ContainsAny(part, "<>=!, \t") || len(part) > 64 {
			return nil, fmt.Errorf("%q is not a constraint (want an optional operator >=, >, <=, <, == or != and a value, such as \">=3.10\"; comparisons joined by commas)", truncate([]byte(c), 64))
		}
		out = append(out, comparison{op, part})
	}
	return out, nil
}

// Validate checks every requirement, returning a *FieldError naming the
// first malformed one as field.name (field is "requires" or
// "tasks[3].requires").
func (r Requires) Validate(field string) error {
	if len(r) > MaxRequires {
		return &FieldError{field, fmt.Sprintf("has %d requirements, more than %d", len(r), MaxRequires)}
	}
	for _, n := range r.names() {
		if !traitName.MatchString(n) {
			return &FieldError{field, fmt.Sprintf("%q is not a trait name (letters, digits and _.- up to 64 characters)", truncate([]byte(n), 64))}
		}
		if _, err := parseConstraint(r[n]); err != nil {
			return &FieldError{field + "." + n, err.Error()}
		}
	}
	return nil
}

func (r Requires) names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// String is the canonical text of r: "gpu;python>=3.10", names sorted,
// a bare "==" dropped.
func (r Requires) String() string {
	var b strings.Builder
	for i, n := range r.names() {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(requirement(n, r[n]))
	}
	return b.String()
}

// requirement spells one requirement: "gpu", "python>=3.10", "os==linux".
func requirement(name, constraint string) string {
	c := strings.TrimSpace(constraint)
	if c == "" {
		return name
	}
	if !strings.ContainsAny(c[:1], "<>=!") {
		c = "==" + c
	}
	return name + c
}

// ParseRequiresText reads String's form back (the status store keeps
// requirements as text). It is lenient: a malformed item is dropped.
func ParseRequiresText(s string) Requires {
	if s == "" {
		return nil
	}
	r := Requires{}
	for item := range strings.SplitSeq(s, ";") {
		i := strings.IndexAny(item, "<>=!")
		if i < 0 {
			r[item] = ""
			continue
		}
		c := item[i:]
		if strings.HasPrefix(c, "==") && !strings.Contains(c, ",") {
			c = c[2:]
		}
		r[item[:i]] = c
	}
	return r
}

// Match reports whether traits satisfy every requirement of r. It returns
// the traits that matched the requirements (name to the runner's value)
// or, when one is not met, that requirement spelled out ("python>=3.10").
// A malformed constraint is never met.
func (r Requires) Match(traits Traits) (matched Traits, unmet string) {
	if len(r) == 0 {
		return nil, ""
	}
	matched = Traits{}
	for _, n := range r.names() {
		have, ok := traits[n]
		cmps, err := parseConstraint(r[n])
		if !ok || err != nil {
			return nil, requirement(n, r[n])
		}
		for _, c := range cmps {
			if !compare(have, c) {
				return nil, requirement(n, r[n])
			}
		}
		matched[n] = have
	}
	return matched, ""
}

// compare applies one comparison to a trait's value.
func compare(have string, c comparison) bool {
	d := compareValues(have, c.value)
	switch c.op {
	case ">=":
		return d >= 0
	case ">":
		return d > 0
	case "<=":
		return d <= 0
	case "<":
		return d < 0
	case "!=":
		return d != 0
	}
	return d == 0
}

// compareValues compares dotted numbers numerically, segment by segment
// (a missing segment is 0: "3" == "3.0"), and anything else as strings.
func compareValues(a, b string) int {
	as, aok := dotted(a)
	bs, bok := dotted(b)
	if !aok || !bok {
		return strings.Compare(a, b)
	}
	for i := range max(len(as), len(bs)) {
		var x, y uint64
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func dotted(s string) ([]uint64, bool) {
	if s == "" {
		return nil, false
	}
	var out []uint64
	for p := range strings.SplitSeq(s, ".") {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// Serves reports whether the runner r takes tasks of function from queue
// and has the traits req requires. A runner that names no queues (an
// older one) serves "default".
func (r *RunnerInfo) Serves(queue, function string, req Requires) bool {
	return r.servesQueue(queue) && slices.Contains(r.Functions, function) && r.meets(req)
}

func (r *RunnerInfo) servesQueue(queue string) bool {
	if len(r.Queues) == 0 {
		return queue == DefaultQueue
	}
	return slices.Contains(r.Queues, queue)
}

func (r *RunnerInfo) meets(req Requires) bool {
	_, unmet := req.Match(r.Traits)
	return unmet == ""
}

// WhyWaiting says why a task of function on queue with requirements req
// cannot start, given the live runners: "no live runner on queue grid",
// "no live runner with function resize on queue grid" or "no live runner
// with python>=3.10 on queue grid". It is empty when one of them can run
// it.
func WhyWaiting(runners []*RunnerInfo, queue, function string, req Requires) string {
	var onQueue, withFunction bool
	for _, r := range runners {
		if !r.servesQueue(queue) {
			continue
		}
		onQueue = true
		if !slices.Contains(r.Functions, function) {
			continue
		}
		withFunction = true
		if r.meets(req) {
			return ""
		}
	}
	switch {
	case !onQueue:
		return fmt.Sprintf("no live runner on queue %s", queue)
	case !withFunction:
		return fmt.Sprintf("no live runner with function %s on queue %s", function, queue)
	}
	parts := make([]string, 0, len(req))
	for _, n := range req.names() {
		parts = append(parts, requirement(n, req[n]))
	}
	return fmt.Sprintf("no live runner with %s on queue %s", strings.Join(parts, " "), queue)
}
