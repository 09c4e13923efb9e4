// Package config owns authz's YAML configuration: the schema of interface.md, strict decoding
// (an unknown key is an error naming the key and its line), AUTHZ_<KEY> environment overrides,
// defaults, and Validate, which reports every problem at once.
//
// It is a package of its own (not cmd/authz/config.go) because the server's end-to-end tests, the
// benchmark and the CLI all load the same file. It imports nothing of authz: the server converts the
// validated Config into storage records and verifier settings.
package config
