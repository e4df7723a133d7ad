package config

import "strings"

// Problem is one thing wrong with a configuration.
type Problem struct {
	File   string
	Key    string // dotted path with list indices, e.g. radius.clients[0].secret; "" for the file as a whole
	Reason string
}

func (p *Problem) Error() string {
	if p.Key == "" {
		return p.File + ": " + p.Reason
	}
	return p.File + ": " + p.Key + ": " + p.Reason
}

// Errors is every problem found in one configuration, in a stable order.
// Its message is one "FILE: KEY: reason" line per problem.
type Errors []*Problem

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a single *Problem.
func (e Errors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, p := range e {
		errs[i] = p
	}
	return errs
}

// problems collects errors and warnings while one file is decoded and validated.
type problems struct {
	file     string
	env      map[string]string // key → environment variable that set it
	errs     Errors
	warnings []string
	seen     map[string]bool // keys with an error already; one error per key is enough
}

func newProblems(file string, env map[string]string) *problems {
	return &problems{file: file, env: env, seen: map[string]bool{}}
}

func (p *problems) add(key, reason string) {
	if p.seen[key] {
		return
	}
	p.seen[key] = true
	if name, ok := p.env[key]; ok {
		reason += " (from $" + name + ")"
	}
	p.errs = append(p.errs, &Problem{File: p.file, Key: key, Reason: reason})
}

func (p *problems) warn(key, reason string) {
	p.warnings = append(p.warnings, (&Problem{File: p.file, Key: key, Reason: reason}).Error())
}
