package main

import "errors"

// Exit codes of every ferry command, as docs/cli.md lists them for scripts
// and monitoring. An error carries its code with withExitCode; any other
// error exits with exitError.
const (
	exitOK        = 0
	exitError     = 1 // the command failed; stderr says why and what to do
	exitUsage     = 2 // bad command line: unknown command, flag or argument
	exitDiffers   = 3 // a backup differs from its source or is corrupt
	exitUnhealthy = 4 // ferry status: an image failing or past its RPO, no active consumer, a site unreachable
)

// codedError is an error with the exit code it must end the process with.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withExitCode makes the process exit with code when err ends a command.
func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// exitCodeOf is the code the process ends with after err.
func exitCodeOf(err error) int {
	if err == nil {
		return exitOK
	}
	var coded *codedError
	if errors.As(err, &coded) {
		return coded.code
	}
	return exitError
}
