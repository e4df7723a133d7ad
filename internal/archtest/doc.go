// Package archtest holds no code, only the test that guards the import table
// of docs/architecture.md and the rule that every package says what it
// is in a package comment. A rule that a test does not check erodes one
// convenient import at a time; this one fails the build instead.
package archtest
