package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
)

// UploadOptions are the options of UploadModule.
type UploadOptions struct {
	// Name is the module's name (may be empty).
	Name string
	// Progress, when set, is called with each number of bytes sent.
	Progress func(n int)
}

// UploadModule uploads a module's bytes (POST /v1/modules). created is
// false when the account already had a module of these bytes (the API
// answers 200 with it).
func (c *Client) UploadModule(ctx context.Context, wasm []byte, opts *UploadOptions) (m *Module, created bool, err error) {
	if opts == nil {
		opts = &UploadOptions{}
	}
	q := url.Values{}
	if opts.Name != "" {
		q.Set("name", opts.Name)
	}
	res, err := c.send(ctx, request{method: http.MethodPost, path: "/v1/modules", query: q, body: wasm,
		ctype: "application/wasm", safe: true, progress: opts.Progress})
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = res.Body.Close() }()
	m = &Module{}
	if err := decodeJSON(res, m); err != nil {
		return nil, false, err
	}
	return m, res.StatusCode == http.StatusCreated, nil
}

// ModuleBySHA256 finds the account's module of these bytes, given as
// lowercase hex (GET /v1/modules?sha256=). found is false when there is
// none.
func (c *Client) ModuleBySHA256(ctx context.Context, sum string) (m *Module, found bool, err error) {
	var page Page[Module]
	if err := c.get(ctx, "/v1/modules", url.Values{"sha256": {sum}}, &page); err != nil {
		return nil, false, err
	}
	if len(page.Data) == 0 {
		return nil, false, nil
	}
	return &page.Data[0], true, nil
}

// EnsureModule returns the account's module of these bytes, uploading them
// only when the platform lacks them. uploaded says whether it did.
func (c *Client) EnsureModule(ctx context.Context, wasm []byte, opts *UploadOptions) (m *Module, uploaded bool, err error) {
	sum := sha256.Sum256(wasm)
	m, found, err := c.ModuleBySHA256(ctx, hex.EncodeToString(sum[:]))
	if err != nil || found {
		return m, false, err
	}
	m, _, err = c.UploadModule(ctx, wasm, opts)
	return m, err == nil, err
}

// ListModules reads a page of the account's modules, newest first.
func (c *Client) ListModules(ctx context.Context, o ListOptions) (*Page[Module], error) {
	var p Page[Module]
	return &p, c.get(ctx, "/v1/modules", listQuery(o), &p)
}

// GetModule reads one module.
func (c *Client) GetModule(ctx context.Context, id string) (*Module, error) {
	var m Module
	return &m, c.get(ctx, "/v1/modules/"+seg(id), nil, &m)
}

// DeleteModule deletes a module; its queued jobs end failed with
// module_deleted. A delete retried after a lost answer may report
// not_found: the first attempt deleted it.
func (c *Client) DeleteModule(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/modules/" + seg(id), safe: true}, nil)
	return err
}

// PutAsset attaches a read-only tree to a module at mount (PUT
// /v1/modules/{id}/assets?mount=): tarball is a tar, or a gzipped tar when
// gzipped is true.
func (c *Client) PutAsset(ctx context.Context, moduleID, mount string, tarball []byte, gzipped bool, progress func(int)) (*Asset, error) {
	ct := "application/x-tar"
	if gzipped {
		ct = "application/gzip"
	}
	var a Asset
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/modules/" + seg(moduleID) + "/assets",
		query: url.Values{"mount": {mount}}, body: tarball, ctype: ct, safe: true, progress: progress}, &a)
	return &a, err
}

// ListAssets lists a module's asset trees.
func (c *Client) ListAssets(ctx context.Context, moduleID string) ([]Asset, error) {
	var p Page[Asset]
	return p.Data, c.get(ctx, "/v1/modules/"+seg(moduleID)+"/assets", nil, &p)
}

// DeleteAsset removes the asset tree at mount.
func (c *Client) DeleteAsset(ctx context.Context, moduleID, mount string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/modules/" + seg(moduleID) + "/assets",
		query: url.Values{"mount": {mount}}, safe: true}, nil)
	return err
}
