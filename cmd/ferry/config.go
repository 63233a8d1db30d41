package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ferry-dr/ferry/internal/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configKeyAnnotation marks a flag as the command-line name of a config key.
// Flag structs call bindConfig in register; the root command then fills every
// flag the command line left alone from the loaded configuration (file, then
// FERRY_* environment), so flags win and there is one way to set each thing.
const configKeyAnnotation = "ferry-config-key"

// selfLoadsConfig marks a command that reads the configuration itself
// (ferry config check), so a broken file does not stop it before it runs.
const selfLoadsConfig = "ferry-config-self"

// lenientConfig marks a command that must run even with a broken
// configuration (ferry hook: libvirtd must never see it fail); it reports
// each problem on stderr and goes on without the values at fault.
const lenientConfig = "ferry-config-lenient"

// defaults are what the flags show; the same values config.Load starts from.
var defaults = config.Default()

func bindConfig(fs *pflag.FlagSet, flag, key string) {
	if _, ok := defaults.Value(key); !ok {
		panic("flag --" + flag + " bound to unknown config key " + key)
	}
	_ = fs.SetAnnotation(flag, configKeyAnnotation, []string{key})
}

// addConfigFlag installs --config and the loading step on the root command.
func addConfigFlag(root *cobra.Command) {
	var path string
	root.PersistentFlags().StringVar(&path, "config", "", "configuration file (default: $"+config.PathEnv+", then "+config.DefaultPath+" if it exists)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Annotations[selfLoadsConfig] != "" {
			return nil
		}
		if cmd.Annotations[lenientConfig] != "" {
			l, ps := config.LoadLenient(configPath(path), os.LookupEnv)
			for _, p := range ps {
				printError("ferry: warning: config:", fmt.Errorf("%s (left out; going on without it)", p))
			}
			if err := applyConfig(cmd.Flags(), &l.Config); err != nil {
				printError("ferry: warning:", err)
			}
			keepConfig(cmd, &l.Config)
			return nil
		}
		l, err := config.Load(configPath(path), os.LookupEnv)
		if err != nil {
			return err
		}
		keepConfig(cmd, &l.Config)
		return applyConfig(cmd.Flags(), &l.Config)
	}
	// A subcommand with its own persistent pre-run must not skip loading.
	cobra.EnableTraverseRunHooks = true
}

type configContextKey struct{}

// keepConfig hands the loaded configuration to the command, for the
// settings no flag carries (sections of named pairs, such as retention's).
func keepConfig(cmd *cobra.Command, c *config.Config) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	cmd.SetContext(context.WithValue(ctx, configContextKey{}, c))
}

// loadedConfig is the configuration the command runs with: the one loaded
// before it ran, or the defaults.
func loadedConfig(cmd *cobra.Command) *config.Config {
	if ctx := cmd.Context(); ctx != nil {
		if c, ok := ctx.Value(configContextKey{}).(*config.Config); ok {
			return c
		}
	}
	d := config.Default()
	return &d
}

// configPath: --config, then $FERRY_CONFIG, then the default path if it exists.
func configPath(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv(config.PathEnv); p != "" {
		return p
	}
	if _, err := os.Stat(config.DefaultPath); errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return config.DefaultPath
}

// applyConfig sets each bound flag that the command line did not set.
func applyConfig(fs *pflag.FlagSet, c *config.Config) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		keys := f.Annotations[configKeyAnnotation]
		if len(keys) != 1 || f.Changed || err != nil {
			return
		}
		v, _ := c.Value(keys[0])
		if setErr := f.Value.Set(v); setErr != nil {
			err = errors.New("config key " + keys[0] + " does not fit flag --" + f.Name + ": " + setErr.Error())
		}
	})
	return err
}
