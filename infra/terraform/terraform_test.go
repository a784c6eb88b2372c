package terraform_test

// Tests of the Terraform configuration in this directory:
//
//   - terraform fmt -check, init (offline, -plugin-dir) and validate;
//   - a wrong visibility timeout / runner timeout pair fails at plan, naming
//     the variable to change;
//   - a static check of every IAM policy in the plan: no wildcard actions or
//     resources, and each function's role only reaches its own resources
//     (TestIAMCheckerCatchesBadPolicies proves the checker fails bad ones);
//   - apply against moto_server, an end-to-end run of 100 tasks through the
//     VM-mode dispatch, runner and collect processes configured from
//     `terraform output -json`, and destroy.
//
// Everything runs under TestTerraform so that moto_server starts once.
// Requires terraform on PATH; the provider comes from the filesystem mirror
// in $TF_PLUGIN_DIR (default /opt/tf-plugins) when it exists. Skipped with -short.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/awstest"
)

const (
	// Values of env/local.tfvars the checks rely on.
	localName   = "drover-local"
	localRegion = awstest.Region
	account     = awstest.AccountID

	// The VM runner is enabled in the moto run (moto applies launch
	// templates, autoscaling groups and target-tracking policies).
	vmBinaryKey = "bin/drover-linux-amd64"
	vmAMI       = "ami-12c6146b" // any id: moto does not validate AMIs by default

	// The applied stack runs in API-key mode (dispatch_auth_type = NONE),
	// its key in a Secrets Manager secret that the test creates and
	// Terraform only names.
	apiKey           = "drover-terraform-test-key-0123456789"
	apiKeySecretName = "drover-local/api-keys"
)

// ---------------------------------------------------------------- the test

// TestTerraform runs two halves at once, each in its own copy of the
// configuration with its own state:
//
//   - plans: init and validate, the configurations refused at plan time,
//     and the plans of other configurations, checked in `terraform show
//     -json` (nothing is created: moto answers the data sources only);
//   - stack: one applied stack against moto on which every applied check
//     runs: the IAM check on plan and state, the function environments and
//     URL permissions, the VM drain, 100 tasks end to end, a second plan
//     with no changes, a plan without VM runners that only removes them,
//     and destroy.
//
// The plans are CPU work; the apply mostly waits (the AWS provider polls
// each new SQS queue for about 25 s), so the halves overlap well. Run one
// half alone with -run 'TestTerraform$/plans' or 'TestTerraform$/stack'.
func TestTerraform(t *testing.T) {
	if testing.Short() {
		t.Skip("applies a stack to moto_server: not in -short mode")
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Fatal("terraform is not on PATH: make test needs it (see infra/terraform/README.md)")
	}
	src, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{src: src, repo: filepath.Clean(filepath.Join(src, "..", ".."))}

	// fmt runs on the source tree; everything else on copies in temp dirs,
	// so that .terraform, the lock file and state never land in the tree.
	step(t, "fmt", func(t *testing.T) {
		out, err := newTF(t, src, "").run("fmt", "-check", "-recursive", "-diff")
		if err != nil {
			t.Fatalf("terraform fmt -check -recursive: %v\n%s\nfix with: terraform -chdir=infra/terraform fmt -recursive", err, out)
		}
	})

	s.moto, err = awstest.Start()
	if awstest.OptedOut(err) {
		t.Skipf("%s=1 and no moto_server", awstest.SkipEnv)
	}
	if err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	t.Cleanup(s.moto.Stop)

	// Lambda packages: the real functions, or the test fails. Built while
	// the halves initialise; each waits for them where it needs them.
	s.zipDir = filepath.Join(t.TempDir(), "lambda")
	zips := make(chan error, 1)
	go func() { zips <- buildLambdaZips(s.repo, s.zipDir) }()
	s.zipsBuilt = sync.OnceValue(func() error { return <-zips })

	concurrently(t,
		namedStep{"plans", func(t *testing.T) { testPlans(t, s) }},
		namedStep{"stack", func(t *testing.T) { testStack(t, s) }},
	)
	_ = s.zipsBuilt() // the build has ended before its temp dir goes
}

// suite is what the two halves of TestTerraform share.
type suite struct {
	src, repo string
	moto      *awstest.Moto
	// zipDir holds the Lambda zips once zipsBuilt, which waits for the
	// build, returns nil; an error means a function does not build.
	zipDir    string
	zipsBuilt func() error
}

// lambdaZips waits for the Lambda packages and returns their directory,
// failing t without them.
func (s *suite) lambdaZips(t *testing.T) string {
	t.Helper()
	if !step(t, "lambda zips", func(t *testing.T) {
		if err := s.zipsBuilt(); err != nil {
			t.Fatal(err)
		}
	}) {
		t.FailNow()
	}
	return s.zipDir
}

// initCopy copies the configuration into a temp dir of its own and runs
// terraform init there (offline, -plugin-dir), with state in that temp
// dir. It returns the runner, the copy and the state file.
func (s *suite) initCopy(t *testing.T) (tf *tfRunner, work, dir, state string) {
	work = t.TempDir()
	dir = filepath.Join(work, "config")
	copyConfig(t, s.src, dir)
	state = filepath.Join(work, "state", "terraform.tfstate")
	tf = newTF(t, dir, filepath.Join(work, "tfdata"))
	if !step(t, "init", func(t *testing.T) {
		args := []string{"init", "-input=false", "-backend-config=path=" + state}
		if d := pluginDir(); d != "" {
			args = append(args, "-plugin-dir="+d)
		}
		if out, err := tf.run(args...); err != nil {
			t.Fatalf("terraform init: %v\n%s", err, out)
		}
		// The committed lock file pins the provider; init must not have
		// had to change it.
		committed, err := os.ReadFile(filepath.Join(s.src, ".terraform.lock.hcl"))
		if err != nil {
			t.Fatalf("the dependency lock file is not committed: %v", err)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, ".terraform.lock.hcl")); !bytes.Equal(after, committed) {
			t.Errorf("terraform init changed .terraform.lock.hcl: update the committed one\n%s", after)
		}
	}) {
		t.FailNow()
	}
	return tf, work, dir, state
}

// testPlans checks everything a plan shows, without creating anything.
func testPlans(t *testing.T, s *suite) {
	tf, work, dir, _ := s.initCopy(t)

	step(t, "validate", func(t *testing.T) {
		if out, err := tf.run("validate", "-no-color"); err != nil {
			t.Fatalf("terraform validate: %v\n%s", err, out)
		}
	})

	step(t, "plan rejects configurations that cannot work", func(t *testing.T) {
		// Variable validation fails before any API call; the endpoint points
		// nowhere so that nothing could reach real AWS anyway. Terraform
		// reports every variable that fails in one plan, so each plan
		// carries several wrong values (a plan costs tens of seconds on a
		// loaded machine). Dummy credentials: no credential lookup waits
		// for an instance metadata service.
		bad := *tf
		bad.env = append(slices.Clone(tf.env), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
		var cases []namedStep
		for _, tc := range []struct {
			name string
			args []string
			want []string
		}{
			{"local tfvars", []string{"-var-file=env/local.tfvars", "-var", "runner_timeout_seconds=31",
				"-var", `dispatch_api_keys=["drover-terraform-test-key-0123456789"]`,
				"-var", "dispatch_api_keys_secret_arn=arn:aws:ssm:us-east-1:123456789012:parameter/drover/api-keys",
				"-var", "queues={gpu = {}}"},
				[]string{
					"tasks_visibility_timeout_seconds (180) must be at least 6 x runner_timeout_seconds (31) = 186", "raise tasks_visibility_timeout_seconds",
					"Set dispatch_api_keys_secret_arn or dispatch_api_keys, not both",
					"queues must declare default",
				}},
			{"defaults", []string{"-var", "tasks_visibility_timeout_seconds=900", "-var", "collect_timeout_seconds=60",
				"-var", "task_max_attempts=100", "-var", "tasks_max_receive_count=120",
				"-var", "dispatch_api_keys_secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:drover/api-keys",
				"-var", `queues={default = {}, "gpu box" = {}, gpu = {visibility_timeout_seconds = 600, max_receive_count = 100}}`},
				[]string{
					"tasks_visibility_timeout_seconds (900) must be at least 6 x runner_timeout_seconds (300)", "raise tasks_visibility_timeout_seconds to 1800",
					"events_visibility_timeout_seconds (180) must be at least 6 x collect_timeout_seconds (60)", "raise events_visibility_timeout_seconds",
					"tasks_max_receive_count (120) must be at least task_max_attempts (100) + 50", "Raise tasks_max_receive_count to 150",
					"dispatch_api_keys_secret_arn must be the full ARN",
					"queues: each name must be letters, digits, '-' and '_'", "got default, gpu, gpu box",
					"queues: each visibility_timeout_seconds must be a whole number of at least 6 x runner_timeout_seconds (1800)",
					"queues: each max_receive_count must be a whole number from task_max_attempts (100) + 50",
				}},
		} {
			cases = append(cases, namedStep{tc.name, func(t *testing.T) {
				args := append([]string{"plan", "-input=false", "-no-color", "-lock=false", "-refresh=false",
					"-var", "aws_endpoint_url=http://127.0.0.1:9", "-var", "lambda_dir=" + work}, tc.args...)
				out, err := bad.run(args...)
				if err == nil {
					t.Fatalf("plan succeeded, want validation errors")
				}
				flat := strings.Join(strings.Fields(out), " ")
				for _, w := range tc.want {
					if !strings.Contains(flat, w) {
						t.Errorf("plan error does not say %q:\n%s", w, out)
					}
				}
			}})
		}
		concurrently(t, cases...)
	})

	lambdaDir := s.lambdaZips(t)
	tf.env = append(tf.env, s.moto.Env()...)

	// Plans of other configurations, each checked for what it must contain.
	step(t, "plans", func(t *testing.T) {
		var plans []namedStep
		for _, sc := range planScenarios() {
			plans = append(plans, namedStep{sc.name, func(t *testing.T) {
				p := planScenario(t, tf, work, sc, s.moto.Endpoint, lambdaDir)
				for _, c := range sc.checks {
					t.Run(c.name, func(t *testing.T) { c.fn(t, p) })
				}
			}})
		}
		plans = append(plans, namedStep{"examples/production", func(t *testing.T) {
			planProductionExample(t, dir, work, s.moto)
		}})
		concurrently(t, plans...)
	})
}

// testStack applies one stack and runs every applied check on it: the
// emulator settings, VM runners (moto applies launch templates,
// autoscaling groups, lifecycle hooks and scaling policies) and API-key
// mode, so that both function URL permissions are created for real, with
// the keys in a Secrets Manager secret.
func testStack(t *testing.T, s *suite) {
	tf, work, _, state := s.initCopy(t)
	lambdaDir := s.lambdaZips(t)

	// The drover binary of the end-to-end run, built while the stack plans
	// and applies (and waited for before its temp dir goes).
	droverBin := filepath.Join(t.TempDir(), "drover")
	built := make(chan error, 1)
	go func() { built <- goBuild(s.repo, droverBin, []string{"./cmd/drover"}, runtime.GOOS, runtime.GOARCH) }()
	droverBuilt := sync.OnceValue(func() error { return <-built })
	t.Cleanup(func() { _ = droverBuilt() })
	moto := s.moto
	tf.env = append(tf.env, moto.Env()...)

	secretARN := createAPIKeySecret(t, moto)
	vars := []string{
		"-var-file=env/local.tfvars",
		"-var", "aws_endpoint_url=" + moto.Endpoint,
		"-var", "lambda_dir=" + lambdaDir,
		"-var", "lambda_architecture=x86_64",
		"-var", "dispatch_auth_type=NONE",
		"-var", "dispatch_api_keys_secret_arn=" + secretARN,
		// A queue beside default, with its own visibility timeout and
		// longest task (hence its own oldest-message alarm).
		"-var", "queues=" + stackQueues,
	}
	withVM := append(slices.Clone(vars),
		"-var", "vm_runner_enabled=true",
		"-var", "vm_ami_id="+vmAMI,
		"-var", "vm_instance_type=t3.small",
		"-var", "vm_binary_key="+vmBinaryKey,
	)
	planFile := filepath.Join(work, "plan.bin")

	var planJSON []byte
	if !step(t, "plan", func(t *testing.T) {
		out, err := tf.run(append([]string{"plan", "-input=false", "-no-color", parallelism, "-out=" + planFile}, withVM...)...)
		if err != nil {
			t.Fatalf("terraform plan: %v\n%s", err, out)
		}
		planJSON, err = tf.output("show", "-json", planFile)
		if err != nil {
			t.Fatalf("terraform show -json plan: %v", err)
		}
	}) {
		t.FailNow()
	}

	layout := Layout{Partition: "aws", Region: localRegion, Account: account, Name: localName,
		Bucket: localName + "-archive-" + account, VMBinaryKey: vmBinaryKey, APIKeysSecret: secretARN, Queues: []string{"gpu"}}

	step(t, "IAM least privilege (plan)", func(t *testing.T) {
		checkIAM(t, planJSON, "planned_values", layout)
	})

	// Destroy runs however the steps below end; its success is asserted.
	applied := false
	t.Cleanup(func() {
		if !applied {
			return
		}
		start := time.Now()
		out, err := tf.run(append([]string{"destroy", "-auto-approve", "-input=false", "-no-color", parallelism}, withVM...)...)
		if err != nil {
			t.Errorf("terraform destroy: %v\n%s", err, tail(out, 4000))
			return
		}
		if !strings.Contains(out, "Destroy complete!") {
			t.Errorf("terraform destroy did not report completion:\n%s", tail(out, 2000))
		}
		st, err := tf.output("show", "-json")
		if err != nil {
			t.Errorf("terraform show -json after destroy: %v", err)
		} else if n := countResources(st); n != 0 {
			t.Errorf("%d resources left in state after destroy", n)
		}
		t.Logf("step destroy: ok in %s; slowest: %s", time.Since(start).Round(time.Millisecond), slowest(out, 4))
	})

	if !step(t, "apply", func(t *testing.T) {
		applied = true
		out, err := tf.run("apply", "-input=false", "-no-color", "-auto-approve", parallelism, planFile)
		if err != nil {
			t.Fatalf("terraform apply: %v\n%s", err, tail(out, 6000))
		}
		t.Logf("slowest creations: %s", slowest(out, 6))
	}) {
		t.FailNow()
	}

	// The applied state, read once for every check of it.
	var stateJSON []byte
	var outputs Outputs
	if !step(t, "outputs", func(t *testing.T) {
		var err error
		if stateJSON, err = tf.output("show", "-json"); err != nil {
			t.Fatalf("terraform show -json: %v", err)
		}
		raw, err := tf.output("output", "-json")
		if err != nil {
			t.Fatalf("terraform output -json: %v", err)
		}
		outputs = parseOutputs(t, raw)
		checkOutputs(t, outputs, layout)
	}) {
		t.FailNow()
	}

	// The checks below only read the stack (the end-to-end run writes
	// tasks, statuses and objects, none of them managed by Terraform), so
	// they run at once.
	concurrently(t,
		namedStep{"IAM least privilege (applied state)", func(t *testing.T) {
			checkIAM(t, stateJSON, "values", layout)
		}},
		namedStep{"function environments: API keys by reference, collect's tasks topic (applied)", func(t *testing.T) {
			checkAPIKeysByReference(t, tf, stateJSON, state, secretARN)
		}},
		namedStep{"function URL permissions (applied)", func(t *testing.T) {
			checkFunctionURLPolicy(t, moto, localName+"-dispatch")
		}},
		namedStep{"VM runners drain on scale-in (applied)", func(t *testing.T) {
			checkVMDrain(t, stateJSON)
		}},
		namedStep{"queues: gpu is its own queue with its own DLQ, triggers and alarms (applied)", func(t *testing.T) {
			checkQueues(t, moto, stateJSON, outputs)
		}},
		namedStep{"end-to-end 100 tasks (VM mode)", func(t *testing.T) {
			if err := droverBuilt(); err != nil {
				t.Fatalf("build cmd/drover: %v", err)
			}
			runEndToEnd(t, droverBin, moto, outputs, 100, apiKey)
			checkDeadLettersEmpty(t, moto, outputs)
		}},
		namedStep{"second apply is a no-op (VM runners)", func(t *testing.T) {
			checkSecondPlan(t, tf, filepath.Join(work, "noop.plan"), withVM, stateJSON, nil)
		}},
		// Turning the VM runners off removes them and changes nothing
		// else: applied, it leaves exactly the stack without VM runners,
		// whose second plan is then this plan's no-ops.
		namedStep{"without VM runners only the VM runners go (plan)", func(t *testing.T) {
			checkSecondPlan(t, tf, filepath.Join(work, "novm.plan"), vars, stateJSON, func(address string) bool {
				return strings.HasPrefix(address, "module.vm_runner[0].")
			})
		}},
	)
}

// slowest lists the n resources an apply's output says took longest.
func slowest(out string, n int) string {
	type took struct {
		address string
		d       time.Duration
	}
	var all []took
	for _, m := range regexp.MustCompile(`(?m)^(\S+): (?:Creation|Destruction|Modifications) complete after (\S+)`).FindAllStringSubmatch(out, -1) {
		if d, err := time.ParseDuration(m[2]); err == nil {
			all = append(all, took{m[1], d})
		}
	}
	slices.SortFunc(all, func(a, b took) int { return int(b.d - a.d) })
	var parts []string
	for _, x := range all[:min(n, len(all))] {
		parts = append(parts, fmt.Sprintf("%s %s", x.address, x.d))
	}
	return strings.Join(parts, ", ")
}

// The end-to-end run's runners, by DROVER_RUNNER_NAME.
const (
	plainRunner = "plain-runner"
	gpuRunner   = "gpu-runner"
)

// stackQueues are the applied stack's queues: default and gpu, gpu with
// its own visibility timeout and longest task.
const stackQueues = `{default = {}, gpu = {visibility_timeout_seconds = 240, longest_task_seconds = 600}}`

// parallelism lets terraform run more operations at once than its default
// 10: most of an apply against moto is the provider polling new queues.
const parallelism = "-parallelism=32"

// checkOutputs checks the outputs every VM-mode process is configured from.
func checkOutputs(t *testing.T, outputs Outputs, layout Layout) {
	for k, v := range map[string]string{
		"dispatch_url": outputs.DispatchURL, "tasks_queue_url": outputs.TasksQueueURL,
		"events_queue_url": outputs.EventsQueueURL, "tasks_dlq_url": outputs.TasksDLQURL,
		"bucket": outputs.Bucket, "status_table": outputs.StatusTable,
	} {
		if v == "" {
			t.Errorf("output %s is empty", k)
		}
	}
	if outputs.Bucket != layout.Bucket || outputs.StatusTable != localName+"-status" {
		t.Errorf("bucket/table = %q/%q, want %q/%q", outputs.Bucket, outputs.StatusTable, layout.Bucket, localName+"-status")
	}
	want := []string{"DROVER_API_KEYS_SECRET", "DROVER_BUCKET", "DROVER_DLQ_SUBSCRIPTION", "DROVER_DLQ_URLS", "DROVER_EVENTS_SUBSCRIPTION", "DROVER_EVENTS_TOPIC",
		"DROVER_QUEUE_URLS", "DROVER_STATUS", "DROVER_TASKS_SUBSCRIPTION", "DROVER_TASKS_TOPIC"}
	var got []string
	for k := range outputs.Env {
		got = append(got, k)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("drover_env keys = %v, want %v", got, want)
	}
	tasksHost := strings.TrimPrefix(strings.TrimPrefix(outputs.TasksQueueURL, "https://"), "http://")
	if e := outputs.Env["DROVER_TASKS_SUBSCRIPTION"]; e != "awssqs://"+tasksHost+"?raw=true&nacklazy=true" {
		t.Errorf("DROVER_TASKS_SUBSCRIPTION = %q", e)
	}
	if e := outputs.Env["DROVER_STATUS"]; e != "dynamodb://"+outputs.StatusTable+"?partition_key=id&allow_scans=true" {
		t.Errorf("DROVER_STATUS = %q", e)
	}
	// Every declared queue in the outputs; the queues beside default in
	// DROVER_QUEUE_URLS and DROVER_DLQ_URLS, as plain awssqs:// URLs that
	// open as a topic and as a subscription alike.
	if got := slices.Sorted(maps.Keys(outputs.QueueURLs)); !slices.Equal(got, []string{"default", "gpu"}) {
		t.Errorf("queue_urls declares %v, want default and gpu", got)
	}
	if outputs.QueueURLs["default"] != outputs.TasksQueueURL || outputs.QueueDLQURLs["default"] != outputs.TasksDLQURL {
		t.Errorf("queue_urls/queue_dlq_urls default = %q/%q, want tasks_queue_url/tasks_dlq_url %q/%q",
			outputs.QueueURLs["default"], outputs.QueueDLQURLs["default"], outputs.TasksQueueURL, outputs.TasksDLQURL)
	}
	if !strings.HasSuffix(outputs.QueueURLs["gpu"], "/"+localName+"-tasks-gpu") || !strings.HasSuffix(outputs.QueueDLQURLs["gpu"], "/"+localName+"-tasks-gpu-dlq") {
		t.Errorf("queue gpu: %q, its DLQ %q; want %s-tasks-gpu and %[3]s-tasks-gpu-dlq", outputs.QueueURLs["gpu"], outputs.QueueDLQURLs["gpu"], localName)
	}
	for k, urls := range map[string]map[string]string{"DROVER_QUEUE_URLS": outputs.QueueURLs, "DROVER_DLQ_URLS": outputs.QueueDLQURLs} {
		var got map[string]string
		if err := json.Unmarshal([]byte(outputs.Env[k]), &got); err != nil {
			t.Errorf("%s = %q: %v", k, outputs.Env[k], err)
		}
		want := map[string]string{"gpu": "awssqs://" + strings.TrimPrefix(strings.TrimPrefix(urls["gpu"], "https://"), "http://")}
		if !maps.Equal(got, want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	for k, v := range outputs.Env {
		t.Logf("  %s=%s", k, v)
	}
}

type namedStep struct {
	name string
	fn   func(t *testing.T)
}

// concurrently runs each step as a subtest of t, all at the same time, and
// returns when every one has ended. Not t.Parallel: go test's -parallel
// (GOMAXPROCS by default) would queue them behind other tests, and they
// mostly wait on terraform, moto or the processes they start.
func concurrently(t *testing.T, steps ...namedStep) {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range steps {
		wg.Go(func() { step(t, s.name, s.fn) })
	}
	wg.Wait()
}

// step runs fn as a subtest and logs how long it took.
func step(t *testing.T, name string, fn func(t *testing.T)) bool {
	t.Helper()
	start := time.Now()
	ok := t.Run(name, fn)
	verdict := "ok"
	if !ok {
		verdict = "FAILED"
	}
	t.Logf("step %s: %s in %s", name, verdict, time.Since(start).Round(time.Millisecond))
	return ok
}

// ---------------------------------------------------------------- terraform

type tfRunner struct {
	t   *testing.T
	dir string
	env []string
}

func newTF(t *testing.T, dir, dataDir string) *tfRunner {
	cfg := filepath.Join(t.TempDir(), "terraformrc")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=" + cfg}
	if dataDir != "" {
		env = append(env, "TF_DATA_DIR="+dataDir)
	}
	return &tfRunner{t: t, dir: dir, env: env}
}

func (r *tfRunner) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("terraform", args...)
	cmd.Dir = r.dir
	// The caller's AWS settings must not leak in: only what we set counts.
	var base []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "TF_") {
			continue
		}
		base = append(base, kv)
	}
	cmd.Env = append(base, r.env...)
	return cmd
}

// run returns combined output.
func (r *tfRunner) run(args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := r.cmd(args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// output returns stdout only (for -json).
func (r *tfRunner) output(args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := r.cmd(args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return out, nil
}

func pluginDir() string {
	d := os.Getenv("TF_PLUGIN_DIR")
	if d == "" {
		d = "/opt/tf-plugins"
	}
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return d
	}
	return ""
}

// copyConfig copies the configuration (*.tf, *.tftpl, *.tfvars, the lock
// file, the examples' *.example variables) to dst.
func copyConfig(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if d.Name() == ".terraform.lock.hcl" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}
		switch filepath.Ext(p) {
		case ".tf", ".tftpl", ".tfvars", ".example":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy configuration: %v", err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// countResources counts managed resources in `terraform show -json` of state.
func countResources(raw []byte) int {
	var doc struct {
		Values *struct {
			RootModule module `json:"root_module"`
		} `json:"values"`
	}
	if json.Unmarshal(raw, &doc) != nil || doc.Values == nil {
		return 0
	}
	n := 0
	for _, r := range doc.Values.RootModule.all() {
		if r.Mode == "managed" {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------- lambda zips

// buildLambdaZips writes dispatch.zip, collect.zip and runner.zip, each
// holding the linux/amd64 bootstrap built from ./functions/<fn> and zipped
// by ./internal/zipdir, the way `make lambda` builds it (the bootstraps
// stay in out/<fn>/). A function that does not build fails the test: the
// stack is never applied with a stand-in bootstrap.
func buildLambdaZips(repo, out string) error {
	bins := filepath.Join(out, "bin") + string(filepath.Separator)
	if err := os.MkdirAll(bins, 0o755); err != nil {
		return err
	}
	// One go build for the three and zipdir: their shared packages compile
	// once. zipdir is built for this machine (GOOS/GOARCH apply to all
	// four, so it is built for linux/amd64 only where that is this
	// machine), and runs outside this race-instrumented test binary, where
	// deflating 40 MB takes minutes.
	fns := []string{"dispatch", "collect", "runner"}
	pkgs := []string{"./internal/zipdir"}
	for _, fn := range fns {
		pkgs = append(pkgs, "./functions/"+fn)
	}
	zipdir := filepath.Join(bins, "zipdir")
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		if err := goBuild(repo, zipdir, pkgs[:1], runtime.GOOS, runtime.GOARCH); err != nil {
			return err
		}
		pkgs = pkgs[1:]
	}
	if err := goBuild(repo, bins, pkgs, "linux", "amd64", "-tags", "lambda.norpc", "-ldflags=-s -w"); err != nil {
		return fmt.Errorf("the functions do not build, so there is no bootstrap to deploy: %w", err)
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() {
			dir := filepath.Join(out, fn)
			if errs[i] = os.MkdirAll(dir, 0o755); errs[i] != nil {
				return
			}
			if errs[i] = os.Rename(filepath.Join(bins, fn), filepath.Join(dir, "bootstrap")); errs[i] != nil {
				return
			}
			cmd := exec.Command(zipdir, "bootstrap", filepath.Join("..", fn+".zip"))
			cmd.Dir = dir
			if b, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("zip %s: %v: %s", fn, err, b)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// goBuild builds pkgs into out: a file, or for several main packages a
// directory ending in a separator.
func goBuild(dir, out string, pkgs []string, goos, goarch string, flags ...string) error {
	args := append([]string{"build", "-trimpath", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkgs, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// ---------------------------------------------------------------- outputs

type Outputs struct {
	DispatchURL, TasksQueueURL, EventsQueueURL, EventsDLQURL, TasksDLQURL, Bucket, StatusTable string
	Env                                                                                        map[string]string
	// QueueURLs and QueueDLQURLs: every declared queue's, by queue name.
	QueueURLs, QueueDLQURLs map[string]string
}

func parseOutputs(t *testing.T, raw []byte) Outputs {
	t.Helper()
	var m map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("parse terraform output -json: %v", err)
	}
	str := func(k string) string {
		var s string
		if v, ok := m[k]; ok {
			_ = json.Unmarshal(v.Value, &s)
		}
		return s
	}
	o := Outputs{
		DispatchURL: str("dispatch_url"), TasksQueueURL: str("tasks_queue_url"),
		EventsQueueURL: str("events_queue_url"), EventsDLQURL: str("events_dlq_url"), TasksDLQURL: str("tasks_dlq_url"),
		Bucket: str("bucket"), StatusTable: str("status_table"),
	}
	for k, dst := range map[string]*map[string]string{"drover_env": &o.Env, "queue_urls": &o.QueueURLs, "queue_dlq_urls": &o.QueueDLQURLs} {
		if v, ok := m[k]; ok {
			if err := json.Unmarshal(v.Value, dst); err != nil {
				t.Fatalf("parse %s: %v", k, err)
			}
		}
	}
	return o
}

// ---------------------------------------------------------------- IAM check

// Layout is the naming contract of the stack, from which the checker derives
// the ARNs each role may reach.
type Layout struct {
	Partition, Region, Account, Name, Bucket string
	VMBinaryKey                              string
	// APIKeysSecret, if set, is the secret dispatch reads its API keys
	// from (a Secrets Manager secret or an SSM parameter).
	APIKeysSecret string
	// Queues are the task queues declared beside default (queues.tf),
	// each queue "<Name>-tasks-<queue>" with its DLQ.
	Queues []string
}

// taskQueues returns the SQS names of every task queue: "tasks" (default)
// and "tasks-<queue>" for each of l.Queues.
func (l Layout) taskQueues() []string {
	out := []string{"tasks"}
	for _, q := range l.Queues {
		out = append(out, "tasks-"+q)
	}
	return out
}

func (l Layout) sqs(q string) string {
	return fmt.Sprintf("arn:%s:sqs:%s:%s:%s-%s", l.Partition, l.Region, l.Account, l.Name, q)
}
func (l Layout) s3(key string) string {
	if key == "" {
		return fmt.Sprintf("arn:%s:s3:::%s", l.Partition, l.Bucket)
	}
	return fmt.Sprintf("arn:%s:s3:::%s/%s", l.Partition, l.Bucket, key)
}
func (l Layout) table() string {
	return fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s-status", l.Partition, l.Region, l.Account, l.Name)
}
func (l Layout) logGroup(fn string) string {
	return fmt.Sprintf("arn:%s:logs:%s:%s:log-group:/aws/lambda/%s-%s", l.Partition, l.Region, l.Account, l.Name, fn)
}
func (l Layout) function(fn string) string {
	return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s-%s", l.Partition, l.Region, l.Account, l.Name, fn)
}

// vmGroup is the VM runners' autoscaling group as IAM names it before it
// exists: its UUID wildcarded, its name fixed.
func (l Layout) vmGroup() string {
	return fmt.Sprintf("arn:%s:autoscaling:%s:%s:autoScalingGroup:*:autoScalingGroupName/%s-vm-runner", l.Partition, l.Region, l.Account, l.Name)
}

var functionNames = []string{"dispatch", "runner", "collect"}

// grants is the reviewed permission matrix: role owner -> resource ARN ->
// allowed actions. Anything a policy grants beyond it fails the check.
func (l Layout) grants() map[string]map[string][]string {
	table := l.table()
	logs := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	runner := map[string][]string{
		l.sqs("events"):             {"sqs:SendMessage"},
		l.s3("payloads/*"):          {"s3:GetObject"},
		l.s3("results/*"):           {"s3:PutObject"},
		l.s3("logs/*"):              {"s3:PutObject"},
		l.s3("retained/*"):          {"s3:PutObject"},
		l.s3(""):                    {"s3:ListBucket"},
		table:                       {"dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem"},
		l.logGroup("runner") + ":*": logs,
	}
	for _, q := range l.taskQueues() {
		runner[l.sqs(q)] = []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"}
	}
	vm := map[string][]string{}
	for k, v := range runner {
		if !strings.Contains(k, ":log-group:") {
			vm[k] = v
		}
	}
	if l.VMBinaryKey != "" {
		vm[l.s3(l.VMBinaryKey)] = []string{"s3:GetObject"}
	}
	vm[l.vmGroup()] = []string{"autoscaling:CompleteLifecycleAction", "autoscaling:SetInstanceProtection"}
	dispatch := map[string][]string{
		l.s3("payloads/*"):            {"s3:GetObject", "s3:PutObject"},
		l.s3("results/*"):             {"s3:GetObject"},
		l.s3("retained/*"):            {"s3:GetObject"},
		l.s3("deadletters/*"):         {"s3:DeleteObject", "s3:GetObject"},
		l.s3(""):                      {"s3:ListBucket"},
		table:                         {"dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem"},
		table + "/index/by_kind":      {"dynamodb:Query", "dynamodb:Scan"},
		l.logGroup("dispatch") + ":*": logs,
	}
	collect := map[string][]string{
		l.sqs("events"):       {"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
		table:                 {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
		l.s3("poison/*"):      {"s3:PutObject"},
		l.s3("deadletters/*"): {"s3:PutObject"},
		// Workflows: released steps are enqueued by the collector, their
		// inputs read from (and large ones written to) the archive.
		l.s3("payloads/*"):           {"s3:GetObject", "s3:PutObject"},
		l.s3("results/*"):            {"s3:GetObject"},
		l.logGroup("collect") + ":*": logs,
	}
	for _, q := range l.taskQueues() {
		dispatch[l.sqs(q)] = []string{"sqs:GetQueueAttributes", "sqs:SendMessage"}
		collect[l.sqs(q)] = []string{"sqs:SendMessage"}
		collect[l.sqs(q+"-dlq")] = []string{"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"}
	}
	if l.APIKeysSecret != "" {
		if strings.Contains(l.APIKeysSecret, ":ssm:") {
			dispatch[l.APIKeysSecret] = []string{"ssm:GetParameter"}
		} else {
			dispatch[l.APIKeysSecret] = []string{"secretsmanager:GetSecretValue"}
		}
	}
	return map[string]map[string][]string{
		"dispatch":  dispatch,
		"runner":    runner,
		"collect":   collect,
		"vm_runner": vm,
	}
}

// RolePolicy is one identity policy attached to a role, by the function
// (module) that owns the role.
type RolePolicy struct {
	Owner   string // dispatch, runner, collect, vm_runner
	Address string
	JSON    string
}

type module struct {
	Address   string     `json:"address"`
	Resources []resource `json:"resources"`
	Children  []module   `json:"child_modules"`
}

type resource struct {
	Address string         `json:"address"`
	Mode    string         `json:"mode"`
	Type    string         `json:"type"`
	Values  map[string]any `json:"values"`
}

func (m module) all() []resource {
	out := slices.Clone(m.Resources)
	for _, c := range m.Children {
		out = append(out, c.all()...)
	}
	return out
}

// policiesFrom extracts role policies from `terraform show -json` output, of
// a plan (key "planned_values") or of state (key "values"). Ways of granting
// that the stack must not use (managed policies, attachments, inline_policy
// blocks) are reported as problems.
func policiesFrom(raw []byte, key string) ([]RolePolicy, []string, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, nil, err
	}
	var vals struct {
		RootModule module `json:"root_module"`
	}
	if err := json.Unmarshal(doc[key], &vals); err != nil {
		return nil, nil, fmt.Errorf("no %s in terraform show output: %w", key, err)
	}
	var pols []RolePolicy
	var problems []string
	for _, r := range vals.RootModule.all() {
		if r.Mode != "managed" {
			continue
		}
		switch r.Type {
		case "aws_iam_role_policy":
			p, ok := r.Values["policy"].(string)
			if !ok {
				problems = append(problems, r.Address+": policy not known at plan time (build ARNs from names so it can be checked)")
				continue
			}
			pols = append(pols, RolePolicy{Owner: ownerOf(r.Address), Address: r.Address, JSON: p})
		case "aws_iam_role":
			if v, ok := r.Values["managed_policy_arns"].([]any); ok && len(v) > 0 {
				problems = append(problems, fmt.Sprintf("%s: managed policies attached: %v", r.Address, v))
			}
			if v, ok := r.Values["inline_policy"].([]any); ok {
				for _, ip := range v {
					if m, _ := ip.(map[string]any); m != nil && m["policy"] != nil && m["policy"] != "" {
						problems = append(problems, r.Address+": inline_policy block (use aws_iam_role_policy so it is checked)")
					}
				}
			}
		case "aws_iam_policy", "aws_iam_role_policy_attachment", "aws_iam_policy_attachment",
			"aws_iam_role_policies_exclusive", "aws_iam_role_policy_attachments_exclusive":
			problems = append(problems, r.Address+": "+r.Type+" not allowed; each function's role holds one inline policy")
		}
	}
	return pols, problems, nil
}

// ownerOf maps "module.dispatch.aws_iam_role_policy.this" to "dispatch" and
// "module.vm_runner[0]...." to "vm_runner".
func ownerOf(address string) string {
	rest, ok := strings.CutPrefix(address, "module.")
	if !ok {
		return "root"
	}
	name, _, _ := strings.Cut(rest, ".")
	name, _, _ = strings.Cut(name, "[")
	return name
}

type statement struct {
	Sid         string          `json:"Sid"`
	Effect      string          `json:"Effect"`
	Action      stringList      `json:"Action"`
	NotAction   stringList      `json:"NotAction"`
	Resource    stringList      `json:"Resource"`
	NotResource stringList      `json:"NotResource"`
	Principal   json.RawMessage `json:"Principal"`
}

// stringList is an IAM string-or-list.
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// CheckPolicies returns every violation: wildcard actions or resources,
// NotAction/NotResource, a role reaching another function's resources, and
// any (action, resource) pair outside the owner's reviewed grants.
func CheckPolicies(l Layout, pols []RolePolicy) []string {
	grants := l.grants()
	var bad []string
	for _, p := range pols {
		var doc struct {
			Statement json.RawMessage `json:"Statement"`
		}
		if err := json.Unmarshal([]byte(p.JSON), &doc); err != nil {
			bad = append(bad, fmt.Sprintf("%s: policy is not JSON: %v", p.Address, err))
			continue
		}
		var stmts []statement
		if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
			var one statement
			if err2 := json.Unmarshal(doc.Statement, &one); err2 != nil {
				bad = append(bad, fmt.Sprintf("%s: cannot parse Statement: %v", p.Address, err))
				continue
			}
			stmts = []statement{one}
		}
		allowed, known := grants[p.Owner]
		if !known {
			bad = append(bad, fmt.Sprintf("%s: role policy owned by %q, which has no reviewed grants", p.Address, p.Owner))
		}
		for i, s := range stmts {
			where := fmt.Sprintf("%s statement %d (%s)", p.Address, i, s.Sid)
			if len(s.NotAction) > 0 || len(s.NotResource) > 0 {
				bad = append(bad, where+": NotAction/NotResource grant everything else")
			}
			if len(s.Principal) > 0 {
				bad = append(bad, where+": Principal in an identity policy")
			}
			for _, a := range s.Action {
				if strings.ContainsAny(a, "*?") {
					bad = append(bad, fmt.Sprintf("%s: wildcard action %q", where, a))
				}
			}
			if xrayWrite(s) {
				continue // X-Ray's write actions accept no resource but "*"
			}
			for _, r := range s.Resource {
				if p.Owner == "vm_runner" && r == l.vmGroup() {
					// The one wildcard allowed inside an ARN: the group's
					// UUID, with the group's own name fixed.
				} else if msg := wildcardProblem(r); msg != "" {
					bad = append(bad, fmt.Sprintf("%s: resource %q: %s", where, r, msg))
				}
				for _, other := range functionNames {
					if other == p.Owner || (p.Owner == "vm_runner" && other == "runner") {
						continue
					}
					if strings.HasPrefix(r, l.logGroup(other)) || strings.HasPrefix(r, l.function(other)) {
						bad = append(bad, fmt.Sprintf("%s: %s's role reaches the %s function's resource %q", where, p.Owner, other, r))
					}
				}
			}
			if s.Effect != "Allow" {
				continue // a Deny only narrows
			}
			for _, a := range s.Action {
				for _, r := range s.Resource {
					if !slices.Contains(allowed[r], a) {
						bad = append(bad, fmt.Sprintf("%s: %s may not %s on %q (not in its reviewed grants)", where, p.Owner, a, r))
					}
				}
			}
		}
	}
	return bad
}

// xrayWrite reports a statement granting only X-Ray's trace writes, which
// take no resource-level permissions, on "*" (lambda_tracing_mode).
func xrayWrite(s statement) bool {
	if s.Effect != "Allow" || !slices.Equal(s.Resource, stringList{"*"}) || len(s.Action) == 0 {
		return false
	}
	for _, a := range s.Action {
		if a != "xray:PutTraceSegments" && a != "xray:PutTelemetryRecords" {
			return false
		}
	}
	return true
}

// wildcardProblem allows a wildcard only as a trailing "/*" (keys under a
// fixed prefix) or ":*" (streams of one log group) after a complete ARN.
func wildcardProblem(r string) string {
	if r == "*" {
		return "all resources"
	}
	if !strings.HasPrefix(r, "arn:") {
		return "not an ARN"
	}
	base := r
	if strings.HasSuffix(r, "/*") || strings.HasSuffix(r, ":*") {
		base = r[:len(r)-2]
	}
	if strings.ContainsAny(base, "*?") {
		return "wildcard inside the ARN"
	}
	parts := strings.SplitN(base, ":", 6)
	if len(parts) < 6 || parts[5] == "" {
		return "incomplete ARN"
	}
	if parts[2] == "s3" && base == "arn:"+parts[1]+":s3:::" {
		return "every bucket"
	}
	return ""
}

func checkIAM(t *testing.T, raw []byte, key string, l Layout) {
	t.Helper()
	pols, problems, err := policiesFrom(raw, key)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{}
	for _, p := range pols {
		owners[p.Owner] = true
	}
	for _, want := range []string{"dispatch", "runner", "collect", "vm_runner"} {
		if !owners[want] {
			t.Errorf("no role policy found for %s (the check would pass vacuously)", want)
		}
	}
	for _, p := range append(problems, CheckPolicies(l, pols)...) {
		t.Error(p)
	}
	t.Logf("checked %d role policies: %v", len(pols), slices.Sorted(maps.Keys(owners)))
}

// TestIAMCheckerCatchesBadPolicies proves the checker fails on what it must.
func TestIAMCheckerCatchesBadPolicies(t *testing.T) {
	l := Layout{Partition: "aws", Region: "us-east-1", Account: "123456789012", Name: "drover", Bucket: "drover-archive-123456789012"}
	good := RolePolicy{Owner: "dispatch", Address: "module.dispatch.aws_iam_role_policy.this", JSON: fmt.Sprintf(`{
		"Version": "2012-10-17",
		"Statement": [
			{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": %q},
			{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [%q]},
			{"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [%q]}
		]}`, l.sqs("tasks"), l.s3("payloads/*"), l.logGroup("dispatch")+":*")}
	if bad := CheckPolicies(l, []RolePolicy{good}); len(bad) != 0 {
		t.Fatalf("a least-privilege policy was rejected: %v", bad)
	}

	stmt := func(owner, statement string) RolePolicy {
		return RolePolicy{Owner: owner, Address: "module." + owner + ".aws_iam_role_policy.this",
			JSON: `{"Version": "2012-10-17", "Statement": [` + statement + `]}`}
	}
	for _, tc := range []struct {
		name string
		pol  RolePolicy
		want string
	}{
		{"star action", stmt("runner", `{"Effect": "Allow", "Action": "*", "Resource": "`+l.sqs("tasks")+`"}`), `wildcard action "*"`},
		{"service star action", stmt("collect", `{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "`+l.table()+`"}`), `wildcard action "dynamodb:*"`},
		{"partial star action", stmt("runner", `{"Effect": "Allow", "Action": ["sqs:Get*"], "Resource": "`+l.sqs("tasks")+`"}`), `wildcard action "sqs:Get*"`},
		{"star resource", stmt("dispatch", `{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}`), "all resources"},
		{"wildcard queue ARN", stmt("dispatch", `{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:123456789012:drover-*"}`), "wildcard inside the ARN"},
		{"whole bucket objects", stmt("runner", `{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "`+l.s3("*")+`"}`), "may not s3:GetObject"},
		{"NotAction", stmt("runner", `{"Effect": "Allow", "NotAction": "iam:PassRole", "Resource": "`+l.sqs("tasks")+`"}`), "NotAction/NotResource"},
		{"dispatch deletes tasks", stmt("dispatch", `{"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:DeleteMessage"], "Resource": "`+l.sqs("tasks")+`"}`), "dispatch may not sqs:DeleteMessage"},
		{"runner writes dispatch logs", stmt("runner", `{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "`+l.logGroup("dispatch")+`:*"}`), "runner's role reaches the dispatch function's resource"},
		{"collect invokes runner", stmt("collect", `{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "`+l.function("runner")+`"}`), "collect's role reaches the runner function's resource"},
		{"runner sends tasks", stmt("runner", `{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "`+l.sqs("tasks")+`"}`), "runner may not sqs:SendMessage"},
		{"collect writes results", stmt("collect", `{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "`+l.s3("results/*")+`"}`), "collect may not s3:PutObject"},
		{"collect consumes tasks", stmt("collect", `{"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "`+l.sqs("tasks")+`"}`), "collect may not sqs:ReceiveMessage"},
		{"another group's drain", stmt("vm_runner", `{"Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction", "Resource": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/*"}`), "wildcard inside the ARN"},
		{"dispatch drains VMs", stmt("dispatch", `{"Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction", "Resource": "`+l.vmGroup()+`"}`), "wildcard inside the ARN"},
		{"X-Ray plus more on *", stmt("runner", `{"Effect": "Allow", "Action": ["xray:PutTraceSegments", "sqs:SendMessage"], "Resource": "*"}`), "all resources"},
		{"unknown owner", stmt("stranger", `{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "`+l.sqs("tasks")+`"}`), "no reviewed grants"},
	} {
		bad := CheckPolicies(l, []RolePolicy{tc.pol})
		if !slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, tc.want) }) {
			t.Errorf("%s: checker did not report %q; got %q", tc.name, tc.want, bad)
		}
	}

	// Attachments and managed policies are reported too.
	plan := []byte(`{"planned_values": {"root_module": {"child_modules": [{"address": "module.runner", "resources": [
		{"address": "module.runner.aws_iam_role_policy_attachment.admin", "mode": "managed", "type": "aws_iam_role_policy_attachment", "values": {"policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"}},
		{"address": "module.runner.aws_iam_role.this", "mode": "managed", "type": "aws_iam_role", "values": {"managed_policy_arns": ["arn:aws:iam::aws:policy/PowerUserAccess"]}}
	]}]}}}`)
	_, problems, err := policiesFrom(plan, "planned_values")
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 {
		t.Errorf("attachment and managed policy not both reported: %q", problems)
	}
}

// ---------------------------------------------------------------- end to end

// runEndToEnd runs `drover dispatch`, `drover runner` and `drover collect`
// (bin, built from cmd/drover) configured from the Terraform outputs
// against moto, and runs n echo tasks through them.
//
// With DROVER_API_KEYS_SECRET in the outputs, dispatch reads its keys from
// that secret: requests carry key, and one without it must get 401.
func runEndToEnd(t *testing.T, bin string, moto *awstest.Moto, o Outputs, n int, key string) {

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "DROVER_") {
			env = append(env, kv)
		}
	}
	env = append(env, moto.Env()...)
	for k, v := range o.Env {
		env = append(env, k+"="+v)
	}
	addr := freeAddr(t)
	logs := t.TempDir()
	// Two runners: one serves default, the other only the declared queue
	// gpu (DROVER_QUEUE_URLS from drover_env), with the trait gpu.
	for _, p := range []struct {
		name, role string
		env        []string
	}{
		{"collect", "collect", nil},
		{"runner", "runner", []string{"DROVER_RUNNER_NAME=" + plainRunner}},
		{"gpu-runner", "runner", []string{"DROVER_RUNNER_NAME=" + gpuRunner, "DROVER_QUEUES=gpu", "DROVER_TRAITS=gpu"}},
		{"dispatch", "dispatch", nil},
	} {
		a := addr
		if p.role != "dispatch" {
			a = freeAddr(t) // in case they serve health endpoints too
		}
		startProcess(t, bin, p.name, p.role, append(slices.Clone(env), append(p.env, "DROVER_ADDR="+a)...), logs)
	}
	base := "http://" + addr

	// Wide: on a loaded machine 100 tasks through moto took 3m45s.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 40 * time.Second}
	if o.Env["DROVER_API_KEYS_SECRET"] != "" {
		client.Transport = bearer{key: key, next: http.DefaultTransport}
	}

	// Wait for dispatch.
	start := time.Now()
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("dispatch did not answer /healthz within a minute (last error %v); logs:\n%s", err, readLogs(logs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("dispatch ready in %s", time.Since(start).Round(time.Millisecond))
	if o.Env["DROVER_API_KEYS_SECRET"] != "" {
		// The key came from the secret: without it, dispatch refuses.
		resp, err := http.Get(base + "/v1/runners")
		if err != nil {
			t.Fatalf("GET /v1/runners without a key: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /v1/runners without a key: %s, want 401 (dispatch did not take its keys from DROVER_API_KEYS_SECRET)", resp.Status)
		}
	}

	// Submit n tasks in one batch. Every tenth echoes arguments larger than
	// the inline result limit (4 KiB), so its result is archived in the
	// bucket and the status carries a result_ref. Every fifth from the
	// third on goes to the queue gpu and requires the trait gpu: only the
	// gpu runner may run it, and it runs nothing else.
	type args struct {
		I   int    `json:"i"`
		Pad string `json:"pad,omitempty"`
	}
	type spec struct {
		Function string            `json:"function"`
		Args     args              `json:"args"`
		Queue    string            `json:"queue,omitempty"`
		Requires map[string]string `json:"requires,omitempty"`
	}
	gpu := func(i int) bool { return i%5 == 2 }
	batch := struct {
		Tasks []spec `json:"tasks"`
	}{}
	want := make([]args, n)
	for i := range n {
		want[i] = args{I: i}
		if i%10 == 0 {
			want[i].Pad = strings.Repeat(fmt.Sprintf("%04d", i), 2<<10) // 8 KiB
		}
		sp := spec{Function: "echo", Args: want[i]}
		if gpu(i) {
			sp.Queue, sp.Requires = "gpu", map[string]string{"gpu": ""}
		}
		batch.Tasks = append(batch.Tasks, sp)
	}
	body, _ := json.Marshal(batch)
	resp, err := client.Post(base+"/v1/tasks/batch", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /v1/tasks/batch: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/tasks/batch: %s: %s", resp.Status, raw)
	}
	var submitted struct {
		Tasks []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(raw, &submitted); err != nil || len(submitted.Tasks) != n {
		t.Fatalf("batch response: %d tasks, err %v: %s", len(submitted.Tasks), err, tail(string(raw), 500))
	}
	pending := map[string]int{}
	for i, st := range submitted.Tasks {
		if st.ID == "" {
			t.Fatalf("task %d has no id", i)
		}
		pending[st.ID] = i
	}
	t.Logf("submitted %d tasks", n)

	// check compares a result body with the task's arguments.
	check := func(id string, i int, body []byte, from string) {
		var got args
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil || got != want[i] {
			t.Errorf("task %s (i=%d): %s is %s, want its arguments back", id, i, from, tail(string(body), 200))
		}
	}

	// Poll until every task is terminal.
	submittedAt := time.Now()
	refs := 0
	ranOn := map[string]int{}
	for len(pending) > 0 {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d tasks not succeeded after %s; logs:\n%s", len(pending), n, time.Since(submittedAt).Round(time.Second), readLogs(logs))
		}
		for id, i := range pending {
			doc, err := getStatus(ctx, client, base, id)
			if err != nil {
				if ctx.Err() == nil {
					t.Logf("GET /v1/tasks/%s: %v", id, err)
				}
				continue
			}
			switch doc.State {
			case "succeeded":
				ranOn[doc.Runner]++
				runner, queue := plainRunner, "default"
				if gpu(i) {
					runner, queue = gpuRunner, "gpu"
				}
				if doc.Runner != runner || doc.Queue != queue {
					t.Errorf("task %s (i=%d) on queue %q ran on %q, want queue %s and %s", id, i, doc.Queue, doc.Runner, queue, runner)
				}
				switch {
				case doc.ResultRef != "":
					// The archived result, read back through the API from
					// the bucket Terraform created.
					refs++
					if !strings.HasPrefix(doc.ResultRef, "results/") {
						t.Errorf("task %s: result_ref %q is not under results/", id, doc.ResultRef)
					}
					body, err := getResult(ctx, client, base, id)
					if err != nil {
						t.Errorf("task %s: GET result (result_ref %s): %v", id, doc.ResultRef, err)
					} else {
						check(id, i, body, "result at "+doc.ResultRef)
					}
				case len(doc.Result) > 0:
					check(id, i, doc.Result, "inline result")
				default:
					t.Errorf("task %s (i=%d) succeeded with neither result nor result_ref", id, i)
				}
				delete(pending, id)
			case "failed", "cancelled":
				t.Errorf("task %s (i=%d) ended %s: %s", id, i, doc.State, doc.Error)
				delete(pending, id)
			}
		}
		if len(pending) > 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if wantRefs := (n + 9) / 10; refs != wantRefs {
		t.Errorf("%d tasks had a result_ref, want %d (every task whose result is above the inline limit)", refs, wantRefs)
	}
	t.Logf("%d tasks terminal %s after submission (%d results read from the bucket; tasks per runner %v)", n, time.Since(submittedAt).Round(time.Millisecond), refs, ranOn)
	if t.Failed() {
		t.Logf("logs:\n%s", readLogs(logs))
	}
}

// getResult reads GET /v1/tasks/{id}/result, following a redirect to a
// signed URL if the API answers with one.
func getResult(ctx context.Context, c *http.Client, base, id string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/tasks/"+id+"/result", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, tail(string(raw), 300))
	}
	return raw, nil
}

type statusDoc struct {
	ID        string          `json:"id"`
	Queue     string          `json:"queue"`
	Runner    string          `json:"runner"`
	State     string          `json:"state"`
	Error     string          `json:"error"`
	Result    json.RawMessage `json:"result"`
	ResultRef string          `json:"result_ref"`
}

func getStatus(ctx context.Context, c *http.Client, base, id string) (statusDoc, error) {
	var doc statusDoc
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/tasks/"+id, nil)
	resp, err := c.Do(req)
	if err != nil {
		return doc, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return doc, fmt.Errorf("%s: %s", resp.Status, tail(string(raw), 300))
	}
	return doc, json.Unmarshal(raw, &doc)
}

// startProcess starts `bin role` with env, its output in logDir/name.log.
func startProcess(t *testing.T, bin, name, role string, env []string, logDir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, role)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start drover %s: %v", role, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Only the process group this test started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		f.Close()
	})
}

func readLogs(dir string) string {
	var b strings.Builder
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "---- %s\n%s\n", e.Name(), tail(string(data), 3000))
	}
	return b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
