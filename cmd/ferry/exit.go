package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

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

// usageErrors makes every error of the command line in the tree under root
// exit with exitUsage: a bad or missing flag, a wrong number of arguments,
// an unknown command. A command that only groups others runs nothing: with
// an argument that names none of them it fails, as an unknown command at the
// top does, instead of printing its help and exiting 0.
func usageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withExitCode(exitUsage, err) })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args = unknownSubcommand
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
		if args := c.Args; args != nil {
			c.Args = func(c *cobra.Command, a []string) error { return withExitCode(exitUsage, args(c, a)) }
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// unknownSubcommand refuses any argument to a command that only groups others.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's own default, which it sets only at the top
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return fmt.Errorf("%s (%s --help lists its commands)", msg, c.CommandPath())
}

// usageError marks the one command-line error cobra reports where no hook
// can wrap it: a required flag left out.
func usageError(err error) error {
	if exitCodeOf(err) == exitError && strings.HasPrefix(err.Error(), "required flag(s) ") {
		return withExitCode(exitUsage, err)
	}
	return err
}
