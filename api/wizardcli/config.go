package wizardcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultAPIURL is the API of `make run`.
const DefaultAPIURL = "http://127.0.0.1:8080"

// config is what 'wizard login' stores.
type config struct {
	APIURL string `json:"api_url"`
	APIKey string `json:"api_key"`
}

// configPath is <user config dir>/wasmwizard/config.json
// ($XDG_CONFIG_HOME, else ~/.config on Linux).
func (a *app) configPath() (string, error) {
	dir := a.io.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		var err error
		if dir, err = os.UserConfigDir(); err != nil {
			return "", fmt.Errorf("config dir: %w", err)
		}
	}
	return filepath.Join(dir, "wasmwizard", "config.json"), nil
}

// config reads the stored login, then lets the environment and --api-url
// override it.
func (a *app) config() (config, error) {
	var cfg config
	path, err := a.configPath()
	if err != nil {
		return cfg, err
	}
	b, err := os.ReadFile(path) //nolint:gosec // the user's own configuration file
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &cfg); err != nil {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return cfg, err
	}
	if v := a.io.Getenv("WIZARD_API_URL"); v != "" {
		cfg.APIURL = v
	}
	if v := a.io.Getenv("WIZARD_API_KEY"); v != "" {
		cfg.APIKey = v
	}
	if a.apiURL != "" {
		cfg.APIURL = a.apiURL
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	return cfg, nil
}

// saveConfig writes the login with mode 0600 (its directory 0700), through
// a temporary file renamed into place.
func (a *app) saveConfig(cfg config) (string, error) {
	path, err := a.configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(cfg, "", "  ") //nolint:gosec // the key is meant to be stored here, in a file of mode 0600
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}
