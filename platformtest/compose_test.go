package platformtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   yaml.Node         `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestLocalStack checks deploy/compose.yaml offline: with `docker compose
// config` where the client has the compose plugin, and always by reading
// it: the services it must have, Redis with noeviction, every file it
// mounts and builds from present, every dependency a service, every WIZARD_
// variable a documented one, Prometheus's configuration valid (promtool)
// with the chart's rules, Grafana given the chart's dashboard.
func TestLocalStack(t *testing.T) {
	t.Parallel()
	deploy := filepath.Join(repoRoot, "deploy")
	path := filepath.Join(deploy, "compose.yaml")
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err == nil {
		out, err = exec.Command("docker", "compose", "-f", path, "config", "-q").CombinedOutput()
		require.NoError(t, err, "docker compose config:\n%s", out)
	} else {
		t.Logf("no docker compose here (%s); checking the file by reading it", strings.TrimSpace(string(out)))
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(b, &c))
	for _, s := range []string{"postgres", "redis", "migrate", "api", "worker", "prometheus", "grafana"} {
		require.Contains(t, c.Services, s)
	}
	require.Contains(t, strings.Join(c.Services["redis"].Command, " "), "--maxmemory-policy noeviction")
	require.Equal(t, []string{"migrate"}, c.Services["migrate"].Command)

	docs, err := os.ReadFile(filepath.Join(repoRoot, "docs", "CONFIGURATION.md"))
	require.NoError(t, err)
	for name, s := range c.Services {
		if s.Build != nil {
			_, err := os.Stat(filepath.Join(deploy, s.Build.Context, s.Build.Dockerfile))
			require.NoError(t, err, "%s builds from a missing Dockerfile", name)
		} else {
			require.NotEmpty(t, s.Image, name)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				_, err := os.Stat(filepath.Join(deploy, src))
				require.NoError(t, err, "%s mounts a missing %s", name, src)
			} else {
				require.Contains(t, c.Volumes, src, "%s mounts an undeclared volume", name)
			}
		}
		var deps []string
		switch s.DependsOn.Kind {
		case yaml.SequenceNode:
			require.NoError(t, s.DependsOn.Decode(&deps))
		case yaml.MappingNode:
			var m map[string]any
			require.NoError(t, s.DependsOn.Decode(&m))
			for d := range m {
				deps = append(deps, d)
			}
		}
		for _, d := range deps {
			require.Contains(t, c.Services, d, "%s depends on an unknown service", name)
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "WIZARD_") {
				require.True(t, strings.Contains(string(docs), "`"+k+"`"), "%s sets %s, which docs/CONFIGURATION.md does not describe", name, k)
			}
		}
	}
	require.True(t, slices.ContainsFunc(c.Services["prometheus"].Volumes, func(v string) bool {
		return strings.HasPrefix(v, "../charts/wasmwizard/files/prometheus-rules.yaml:/etc/prometheus/rules/")
	}), "Prometheus evaluates the chart's rules")
	require.True(t, slices.ContainsFunc(c.Services["grafana"].Volumes, func(v string) bool {
		return strings.HasPrefix(v, "../charts/wasmwizard/files/grafana-dashboard.json:/var/lib/grafana/dashboards/")
	}), "Grafana shows the chart's dashboard")
	runPromtool(t, nil, "check", "config", filepath.Join(deploy, "prometheus", "prometheus.yml"))
}
