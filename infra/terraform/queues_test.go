package terraform_test

// Task queues that route (queues.tf): the applied stack declares default
// and gpu; each must be its own SQS queue with its own DLQ, visibility
// timeout, triggers and alarms, and every part must read the queues beside
// default from its one DROVER_QUEUE_URLS.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/droverhq/drover/internal/awstest"
)

// checkQueues checks the applied stack's declared queue gpu (stackQueues)
// in moto and in the state st (`terraform show -json`).
func checkQueues(t *testing.T, moto *awstest.Moto, st []byte, o Outputs) {
	// One value for every part: the functions' DROVER_QUEUE_URLS are
	// drover_env's, and collect sweeps the declared queues' DLQs.
	for _, fn := range functionNames {
		env := functionEnv(t, st, fn)
		if got := env["DROVER_QUEUE_URLS"]; got != o.Env["DROVER_QUEUE_URLS"] {
			t.Errorf("%s function's DROVER_QUEUE_URLS = %v, want drover_env's %s", fn, got, o.Env["DROVER_QUEUE_URLS"])
		}
		var queues any // the runner function serves every queue; the others none
		if fn == "runner" {
			queues = "default,gpu"
		}
		if got := env["DROVER_QUEUES"]; got != queues {
			t.Errorf("%s function's DROVER_QUEUES = %v, want %v", fn, got, queues)
		}
		got, has := env["DROVER_DLQ_URLS"]
		switch {
		case fn == "collect" && got != o.Env["DROVER_DLQ_URLS"]:
			t.Errorf("collect function's DROVER_DLQ_URLS = %v, want drover_env's %s", got, o.Env["DROVER_DLQ_URLS"])
		case fn != "collect" && has:
			t.Errorf("%s function's environment has DROVER_DLQ_URLS", fn)
		}
	}

	// The queue as SQS has it: its own visibility timeout, dead-lettering
	// to its own DLQ after tasks_max_receive_count (150) receives, and the
	// DLQ, swept by collect, moving on to its own -dlq-failed.
	arn := "arn:aws:sqs:" + awstest.Region + ":" + awstest.AccountID + ":" + localName + "-tasks-gpu"
	q := queueAttributes(t, moto, o.QueueURLs["gpu"])
	if q["VisibilityTimeout"] != "240" || q["QueueArn"] != arn {
		t.Errorf("queue gpu: VisibilityTimeout %s, ARN %s; want 240 and %s", q["VisibilityTimeout"], q["QueueArn"], arn)
	}
	checkRedrive(t, "queue gpu", q["RedrivePolicy"], arn+"-dlq", 150)
	dlq := queueAttributes(t, moto, o.QueueDLQURLs["gpu"])
	checkRedrive(t, "queue gpu's DLQ", dlq["RedrivePolicy"], arn+"-dlq-failed", 30)

	// The runner function is triggered by it, collect by its DLQ.
	for addr, source := range map[string]string{
		`aws_lambda_event_source_mapping.runner_queue["gpu"]`:      arn,
		`aws_lambda_event_source_mapping.collect_queue_dlq["gpu"]`: arn + "-dlq",
	} {
		if got := stateResource(t, st, addr)["event_source_arn"]; got != source {
			t.Errorf("%s: event source %v, want %s", addr, got, source)
		}
	}

	// Its alarms: dead letters in its DLQ and in its -dlq-failed, and its
	// oldest message past 3 attempts x (its longest task, 600 s, + 300 s
	// of backoff) + 300 s, not the default queue's threshold.
	alarms := map[string]map[string]any{}
	for _, r := range stateResources(t, st) {
		if r.Type == "aws_cloudwatch_metric_alarm" {
			alarms[fmt.Sprint(r.Values["alarm_name"])] = r.Values
		}
	}
	for _, name := range []string{localName + "-tasks-gpu-dlq-dead-letters", localName + "-tasks-gpu-dlq-failed-dead-letters"} {
		if alarms[name] == nil {
			t.Errorf("no alarm %s", name)
		}
	}
	oldest := map[string]float64{}
	for _, a := range alarms {
		if d, _ := a["dimensions"].(map[string]any); a["metric_name"] == "ApproximateAgeOfOldestMessage" && d != nil {
			oldest[fmt.Sprint(d["QueueName"])] = num(a["threshold"])
		}
	}
	if got, want := oldest[localName+"-tasks-gpu"], float64(3*(600+300)+300); got != want {
		t.Errorf("oldest-message alarm of queue gpu at %v s, want %v (its own longest task)", got, want)
	}
	if got, want := oldest[localName+"-tasks"], float64(3*(30+300)+300); got != want {
		t.Errorf("oldest-message alarm of queue default at %v s, want %v", got, want)
	}
}

// checkDeadLettersEmpty: after the end-to-end run nothing waits or is in
// flight in any dead-letter queue (every declared queue's and the events
// queue's).
func checkDeadLettersEmpty(t *testing.T, moto *awstest.Moto, o Outputs) {
	dlqs := map[string]string{"events": o.EventsDLQURL}
	for q, u := range o.QueueDLQURLs {
		dlqs["queue "+q] = u
	}
	for what, u := range dlqs {
		a := queueAttributes(t, moto, u)
		if a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
			t.Errorf("%s's DLQ holds %s messages, %s in flight: want none", what, a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"])
		}
	}
}

func checkRedrive(t *testing.T, what, policy, target string, receives int) {
	t.Helper()
	var rp struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     any    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(policy), &rp); err != nil {
		t.Errorf("%s: RedrivePolicy %q: %v", what, policy, err)
		return
	}
	// SQS returns the count as a number or a string.
	if n, _ := strconv.Atoi(strings.Trim(fmt.Sprint(rp.MaxReceiveCount), `"`)); rp.DeadLetterTargetArn != target || n != receives {
		t.Errorf("%s: redrives to %s after %v receives, want %s after %d", what, rp.DeadLetterTargetArn, rp.MaxReceiveCount, target, receives)
	}
}

// queueAttributes reads every attribute of a queue from the emulator.
func queueAttributes(t *testing.T, moto *awstest.Moto, url string) map[string]string {
	t.Helper()
	// The CLI's SQS commands do not take AWS_ENDPOINT_URL from moto.Env.
	cmd := exec.Command("aws", "--endpoint-url", moto.Endpoint, "sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All", "--output", "json")
	cmd.Env = append(awsCLIEnv(), moto.Env()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws sqs get-queue-attributes %s: %v: %s", url, err, stderr.String())
	}
	var resp struct{ Attributes map[string]string }
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("get-queue-attributes answer: %v: %s", err, out)
	}
	return resp.Attributes
}

// functionEnv returns a Lambda function's environment from the state.
func functionEnv(t *testing.T, st []byte, fn string) map[string]any {
	t.Helper()
	f := stateResource(t, st, "module."+fn+".aws_lambda_function.this")
	for _, e := range list(f["environment"]) {
		if v, ok := e["variables"].(map[string]any); ok {
			return v
		}
	}
	return map[string]any{}
}

// stateResources returns every resource of `terraform show -json` of the
// state.
func stateResources(t *testing.T, st []byte) []resource {
	t.Helper()
	var doc struct {
		Values struct {
			RootModule module `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal(st, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Values.RootModule.all()
}
