// Package platformtest tests the real API and worker together, against Postgres and Redis.
//
// Its tests start the API (api/app) and a worker (worker/app) in process
// on 127.0.0.1:0, each test on its own Postgres database and Redis queue
// namespace, and drive them over HTTP as a client would: the job and
// module APIs, files and artifacts, streams, webhooks, tenancy, limits,
// hostile modules, tracing, metrics and the alert rules, the console in a
// headless Chromium, and the walk-through of docs/API.md. The package has
// no code of its own outside its tests.
package platformtest
