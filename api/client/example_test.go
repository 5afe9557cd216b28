package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// The examples run against the real platform TestMain starts (apiURL and
// apiKey); a program would read them from its configuration, such as
// WIZARD_API_URL and WIZARD_API_KEY.

func Example() {
	ctx := context.Background()
	c, err := client.New(apiURL, apiKey)
	if err != nil {
		log.Fatal(err)
	}
	wasm := fixtures.Bytes(fixtures.Echo) // os.ReadFile("echo.wasm") in a program
	mod, _, err := c.EnsureModule(ctx, wasm, &client.UploadOptions{Name: "echo"})
	if err != nil {
		log.Fatal(err)
	}
	stdin := "from stdin\n"
	job, err := c.Submit(ctx, client.JobRequest{
		ModuleID: mod.ID,
		Args:     []string{"hello", "world"},
		Env:      map[string]string{"GREETING": "hi"},
		Stdin:    &stdin,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	job, err = c.Wait(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Status, *job.ExitCode)
	fmt.Print(*job.Stdout)
	// Output:
	// succeeded 0
	// hello world
	// GREETING=hi
	// from stdin
}

func ExampleClient_Submit_wait() {
	ctx := context.Background()
	c, _ := client.New(apiURL, apiKey)
	mod, _, err := c.EnsureModule(ctx, fixtures.Bytes(fixtures.Exit3), nil)
	if err != nil {
		log.Fatal(err)
	}
	// Submit and hold the answer until the job finishes (up to 30 s); a
	// retried submit carries the same Idempotency-Key, so it runs once.
	job, err := c.Submit(ctx, client.JobRequest{ModuleID: mod.ID},
		&client.SubmitOptions{Wait: 30 * time.Second, IdempotencyKey: "example-exit3"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Status, *job.ExitCode, job.Error.Code)
	fmt.Print(*job.Stderr)
	// Output:
	// failed 3 exit_nonzero
	// bye
}

func ExampleError() {
	ctx := context.Background()
	c, _ := client.New(apiURL, apiKey)
	mod, _, err := c.EnsureModule(ctx, fixtures.Bytes(fixtures.Hello), nil)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Submit(ctx, client.JobRequest{ModuleID: mod.ID, TimeoutMS: -5}, nil)
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code)
		for _, f := range e.Fields {
			fmt.Println(f.Field)
		}
	}
	// Output:
	// 400 validation_failed
	// timeout_ms
}

func ExampleClient_CancelJob() {
	ctx := context.Background()
	c, _ := client.New(apiURL, apiKey)
	mod, _, err := c.EnsureModule(ctx, fixtures.Bytes(fixtures.Loop), nil)
	if err != nil {
		log.Fatal(err)
	}
	job, err := c.Submit(ctx, client.JobRequest{ModuleID: mod.ID}, nil)
	if err != nil {
		log.Fatal(err)
	}
	job, err = c.CancelJob(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Status)
	_, err = c.CancelJob(ctx, job.ID)
	fmt.Println(client.IsCode(err, client.CodeConflict))
	// Output:
	// cancelled
	// true
}

func ExampleClient_Stream() {
	ctx := context.Background()
	c, _ := client.New(apiURL, apiKey)
	id := os.Getenv("JOB_ID") // a job's ID
	for ev, err := range c.Stream(ctx, id, nil) {
		if err != nil {
			log.Print(err)
			return
		}
		switch ev.Type {
		case client.EventStdout:
			_, _ = os.Stdout.Write(ev.Output)
		case client.EventStderr:
			_, _ = os.Stderr.Write(ev.Output)
		case client.EventEnd:
			fmt.Println("exit code", ev.Job.ExitCode)
		}
	}
}
