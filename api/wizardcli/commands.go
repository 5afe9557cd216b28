package wizardcli

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/api/client/webhook"
)

func (a *app) loginCmd() *cobra.Command {
	var url, key string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Store the API URL and key in the user's config dir (mode 0600)",
		Long: `login checks an API key against the platform and stores it with the URL in
$XDG_CONFIG_HOME/wasmwizard/config.json (~/.config/... by default), mode 0600.
Without --key it asks for the key on a terminal, without echoing it, and
otherwise reads it from the first line of standard input.
WIZARD_API_URL and WIZARD_API_KEY override what is stored.`,
		Example: `  wizard login --url http://127.0.0.1:8080 --key ww_...
  echo "$KEY" | wizard login --url https://wasm.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if url != "" {
				cfg.APIURL = url
			}
			if key == "" {
				if key, err = a.readKey(); err != nil {
					return err
				}
			}
			if key == "" {
				return usagef("no API key given (--key, or a line on standard input)")
			}
			cfg.APIKey = key
			c, err := client.New(cfg.APIURL, cfg.APIKey)
			if err != nil {
				return usagef("%v", err)
			}
			acct, err := c.Account(cmd.Context())
			if err != nil {
				return fmt.Errorf("check the key at %s: %w", cfg.APIURL, err)
			}
			path, err := a.saveConfig(cfg)
			if err != nil {
				return err
			}
			a.notef("logged in to %s as account %q (tier %s); saved in %s", cfg.APIURL, acct.Name, acct.Tier, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "API URL (default: the stored one, else "+DefaultAPIURL+")")
	cmd.Flags().StringVar(&key, "key", "", "API key (ww_...); default: read from standard input")
	return cmd
}

// readKey reads an API key from standard input: typed at a prompt without
// echo when it is a terminal (Ctrl-C or Ctrl-D gives up), else its first
// line (a pipe, a file).
func (a *app) readKey() (string, error) {
	if f, ok := a.io.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		// In raw mode the prompt is written once echo is off, so nothing
		// typed after it shows; term.Terminal edits the line (at most 4096
		// bytes) and echoes nothing of it.
		fd := int(f.Fd())
		state, err := term.MakeRaw(fd)
		if err != nil {
			return "", fmt.Errorf("read the key: %w", err)
		}
		defer func() { _ = term.Restore(fd, state) }()
		t := term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{f, a.io.Stderr}, "")
		key, err := t.ReadPassword("API key: ")
		_, _ = io.WriteString(a.io.Stderr, "\r\n")
		if errors.Is(err, io.EOF) {
			return "", usagef("no API key typed")
		}
		return strings.TrimSpace(key), err
	}
	line, err := bufio.NewReader(a.io.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Remove the stored login",
		Example: "  wizard logout",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, err := a.configPath()
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		},
	}
}

func listFlags(cmd *cobra.Command, o *client.ListOptions) {
	cmd.Flags().IntVar(&o.Limit, "limit", 0, "items per page (1-200; default 50)")
	cmd.Flags().StringVar(&o.Cursor, "cursor", "", "the next_cursor of the previous page")
}

func (a *app) modulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "modules", Aliases: []string{"module"}, Short: "Upload, list, show and delete modules",
		Example: "  wizard modules list\n  wizard modules upload hello.wasm --name hello"}
	var lo client.ListOptions
	list := &cobra.Command{
		Use: "list", Short: "List modules, newest first", Args: cobra.NoArgs,
		Example: "  wizard modules list --limit 10 -o json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := fetch(a, func(c *client.Client) (*client.Page[client.Module], error) { return c.ListModules(cmd.Context(), lo) })
			if err != nil {
				return err
			}
			t := &table{header: []string{"ID", "NAME", "SIZE", "SHA256", "CREATED"}}
			for _, m := range p.Data {
				t.add(m.ID, orDash(m.Name), bytesHuman(m.SizeBytes), m.SHA256[:12], ts(m.CreatedAt))
			}
			return printPage(a, p, t)
		},
	}
	listFlags(list, &lo)
	get := showCmd(a, "get ID", "Show a module with its imports and exports", "  wizard modules get 01a21c90-5fe6-7a89-a466-cda6b504227f",
		(*client.Client).GetModule, moduleTable)
	var name string
	upload := &cobra.Command{
		Use: "upload FILE.wasm", Short: "Upload a module (only if the platform lacks its bytes)", Args: cobra.ExactArgs(1),
		Example: "  wizard modules upload build/app.wasm --name app",
		RunE: func(cmd *cobra.Command, args []string) error {
			return show(a, func(c *client.Client) (*client.Module, error) {
				m, _, err := a.ensureModule(cmd, c, args[0], name)
				return m, err
			}, moduleTable)
		},
	}
	upload.Flags().StringVar(&name, "name", "", "the module's name (default: the file's name)")
	del := &cobra.Command{
		Use: "delete ID", Short: "Delete a module (its queued jobs fail with module_deleted)", Args: cobra.ExactArgs(1),
		Example: "  wizard modules delete 01a21c90-5fe6-7a89-a466-cda6b504227f",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return c.DeleteModule(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(list, get, upload, del)
	return cmd
}

func moduleTable(m *client.Module) *table {
	t := &table{}
	t.add("ID:", m.ID)
	t.add("Name:", orDash(m.Name))
	t.add("SHA-256:", m.SHA256)
	t.add("Size:", bytesHuman(m.SizeBytes))
	t.add("WASI:", fmt.Sprint(m.WASI))
	for _, e := range m.Exports {
		sig := ""
		if e.Kind == "function" {
			sig = "(" + strings.Join(e.Params, ", ") + ") -> (" + strings.Join(e.Results, ", ") + ")"
		}
		t.add("Export:", e.Kind+" "+e.Name+" "+sig)
	}
	t.add("Created:", ts(m.CreatedAt))
	return t
}

// printPage prints a page and, on a table, how to get the next.
func printPage[T any](a *app, p *client.Page[T], t *table) error {
	if err := a.print(apiPage(p), t); err != nil {
		return err
	}
	if p.NextCursor != "" && a.output == "table" {
		a.notef("more: --cursor %s", p.NextCursor)
	}
	return nil
}

// show is the body of a command that fetches one value and prints it: get
// asks the API with a.client(), tab makes the table form of its answer.
func show[T any](a *app, get func(*client.Client) (T, error), tab func(T) *table) error {
	v, err := fetch(a, get)
	if err != nil {
		return err
	}
	return a.print(v, tab(v))
}

// fetch asks the configured API with get.
func fetch[T any](a *app, get func(*client.Client) (T, error)) (T, error) {
	c, err := a.client()
	if err != nil {
		var zero T
		return zero, err
	}
	return get(c)
}

// showCmd is a command that takes one ID, fetches what it names with get
// and prints it, as a table made by tab for -o table.
func showCmd[T any](a *app, use, short, example string, get func(*client.Client, context.Context, string) (T, error), tab func(T) *table) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			return show(a, func(c *client.Client) (T, error) { return get(c, cmd.Context(), args[0]) }, tab)
		},
	}
}

// apiPage is a page as the API sends it: next_cursor is null on the last
// page (the SDK's Page holds an empty string).
func apiPage[T any](p *client.Page[T]) any {
	v := struct {
		Data       []T     `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}{Data: p.Data}
	if p.Data == nil {
		v.Data = []T{}
	}
	if p.NextCursor != "" {
		v.NextCursor = &p.NextCursor
	}
	return v
}

func (a *app) assetsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "assets", Short: "Attach read-only file trees to a module",
		Example: "  wizard assets put MODULE_ID voices.tar.gz --mount /share\n  wizard assets list MODULE_ID"}
	list := showCmd(a, "list MODULE_ID", "List a module's asset trees", "  wizard assets list 01a21c90-5fe6-7a89-a466-cda6b504227f",
		(*client.Client).ListAssets, assetTable)
	var mount string
	put := &cobra.Command{
		Use: "put MODULE_ID TARBALL", Short: "Attach a tar or .tar.gz at --mount", Args: cobra.ExactArgs(2),
		Example: "  wizard assets put 01a21c90-5fe6-… share.tar.gz --mount /share",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.mountClient(mount)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			gz := len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b
			bar := a.progress(int64(len(b)), "upload")
			x, err := c.PutAsset(cmd.Context(), args[0], mount, b, gz, progressFunc(bar))
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			return a.print(x, assetTable([]client.Asset{*x}))
		},
	}
	put.Flags().StringVar(&mount, "mount", "", "the guest directory the tree appears at, e.g. /share")
	del := &cobra.Command{
		Use: "delete MODULE_ID --mount DIR", Short: "Remove the tree at --mount", Args: cobra.ExactArgs(1),
		Example: "  wizard assets delete 01a21c90-5fe6-… --mount /share",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.mountClient(mount)
			if err != nil {
				return err
			}
			return c.DeleteAsset(cmd.Context(), args[0], mount)
		},
	}
	del.Flags().StringVar(&mount, "mount", "", "the mount to remove")
	cmd.AddCommand(list, put, del)
	return cmd
}

// assetTable lists asset trees, one a row.
func assetTable(as []client.Asset) *table {
	t := &table{header: []string{"MOUNT", "FILES", "SIZE", "SHA256"}}
	for _, x := range as {
		t.add(x.Mount, fmt.Sprint(x.Files), bytesHuman(x.SizeBytes), x.SHA256)
	}
	return t
}

// mountClient begins the asset commands that act at --mount: the flag is
// required, then the client.
func (a *app) mountClient(mount string) (*client.Client, error) {
	if mount == "" {
		return nil, usagef("--mount is required")
	}
	return a.client()
}

func (a *app) accountCmd() *cobra.Command {
	return &cobra.Command{
		Use: "account", Short: "Show your account, its tier's limits and today's usage", Args: cobra.NoArgs,
		Example: "  wizard account\n  wizard account -o json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(a, func(c *client.Client) (*client.Account, error) { return c.Account(cmd.Context()) }, accountTable)
		},
	}
}

func accountTable(acct *client.Account) *table {
	t := &table{}
	t.add("ID:", acct.ID)
	t.add("Name:", acct.Name)
	t.add("Tier:", acct.Tier)
	t.add("Runs today:", fmt.Sprint(acct.Usage.RunsToday))
	most := fmt.Sprint(acct.Limits["max_concurrent_runs"])
	if most == "0" {
		most = "no limit"
	} else {
		most = "at most " + most + " at once"
	}
	t.add("Running:", fmt.Sprintf("%d (%s)", acct.Usage.Running, most))
	t.add("Queued:", fmt.Sprint(acct.Usage.Queued))
	t.add("Modules:", fmt.Sprintf("%d (%s)", acct.Usage.Modules, bytesHuman(acct.Usage.ModuleBytes)))
	t.add("Runs/minute:", fmt.Sprint(acct.Limits["runs_per_minute"]))
	t.add("Max timeout:", fmt.Sprintf("%v ms", acct.Limits["max_timeout_ms"]))
	t.add("Max memory:", fmt.Sprintf("%v MiB", acct.Limits["max_memory_mb"]))
	return t
}

// verifiedOut is what webhooks verify prints for -o json and yaml.
type verifiedOut struct {
	Valid     bool   `json:"valid"`
	WebhookID string `json:"webhook_id"`
}

func (a *app) webhooksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "webhooks", Short: "Work with webhook deliveries",
		Example: "  wizard webhooks verify --secret whsec_... --id $ID --timestamp $TS --signature \"$SIG\" < body.json"}
	var secret, id, tsv, sig string
	var raw bool
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check a delivery's signature (exit 0 valid, 1 invalid)",
		Long: `verify reads a delivery from standard input and checks its Standard Webhooks
signature with the account's secret (wizard account -o json | jq -r .webhook_secret).
By default standard input is the raw body and the headers come from flags;
with --http it is the whole HTTP request as received (headers and body).
The timestamp must be within 5 minutes of now.`,
		Example: `  wizard webhooks verify --secret "$SECRET" --id "$WEBHOOK_ID" \
      --timestamp "$WEBHOOK_TIMESTAMP" --signature "$WEBHOOK_SIGNATURE" < body.json
  nc -l 9000 | wizard webhooks verify --secret "$SECRET" --http`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if secret == "" {
				return usagef("--secret is required")
			}
			var h http.Header
			var body []byte
			in := io.LimitReader(a.io.Stdin, 64<<20)
			if raw {
				req, err := http.ReadRequest(bufio.NewReader(in))
				if err != nil {
					return exitWith(ExitFailure, fmt.Errorf("read the HTTP request: %w", err))
				}
				if body, err = io.ReadAll(req.Body); err != nil {
					return exitWith(ExitFailure, fmt.Errorf("read the body: %w", err))
				}
				h = req.Header
			} else {
				var err error
				if body, err = io.ReadAll(in); err != nil {
					return err
				}
				h = http.Header{}
				h.Set("webhook-id", id)
				h.Set("webhook-timestamp", tsv)
				h.Set("webhook-signature", sig)
			}
			if err := webhook.Verify(secret, h, body); err != nil {
				return exitWith(ExitFailure, err)
			}
			if a.output == "table" {
				_, _ = fmt.Fprintln(a.io.Stdout, "valid")
				return nil
			}
			return a.print(verifiedOut{Valid: true, WebhookID: h.Get("webhook-id")}, nil)
		},
	}
	verify.Flags().StringVar(&secret, "secret", "", "the account's whsec_ secret")
	verify.Flags().StringVar(&id, "id", "", "the webhook-id header")
	verify.Flags().StringVar(&tsv, "timestamp", "", "the webhook-timestamp header")
	verify.Flags().StringVar(&sig, "signature", "", "the webhook-signature header")
	verify.Flags().BoolVar(&raw, "http", false, "standard input is the whole HTTP request")
	cmd.AddCommand(verify)
	return cmd
}

// decodeOutput returns a finished job's output bytes.
func decodeOutput(text, b64 *string) []byte {
	switch {
	case text != nil:
		return []byte(*text)
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err == nil {
			return b
		}
	}
	return nil
}
