package terraform_test

// Checks of what the configuration plans and applies, beyond "it applies":
// plans of other configurations (`terraform show -json` of a plan, against
// moto for the data sources only), the applied stack's function URL policy
// and VM drain, and the no-op second plan.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/task"
)

// ---------------------------------------------------------------- plan JSON

type resourceChange struct {
	Address string `json:"address"`
	Type    string `json:"type"`
	Mode    string `json:"mode"`
	Change  struct {
		Actions      []string       `json:"actions"`
		Before       map[string]any `json:"before"`
		After        map[string]any `json:"after"`
		AfterUnknown map[string]any `json:"after_unknown"`
	} `json:"change"`
}

// plan is `terraform show -json` of a plan file.
type plan struct {
	PlannedValues struct {
		RootModule module `json:"root_module"`
	} `json:"planned_values"`
	ResourceChanges []resourceChange `json:"resource_changes"`
}

func parsePlan(t *testing.T, raw []byte) plan {
	t.Helper()
	var p plan
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("parse terraform show -json: %v", err)
	}
	return p
}

// changes returns the planned changes to managed resources of a type.
func (p plan) changes(typ string) []resourceChange {
	var out []resourceChange
	for _, rc := range p.ResourceChanges {
		if rc.Mode == "managed" && rc.Type == typ {
			out = append(out, rc)
		}
	}
	return out
}

// change returns the planned change of one address, failing without it.
func (p plan) change(t *testing.T, address string) resourceChange {
	t.Helper()
	for _, rc := range p.ResourceChanges {
		if rc.Address == address {
			return rc
		}
	}
	t.Fatalf("plan has no %s", address)
	return resourceChange{}
}

// unknown reports whether after[key], or anything in it, is known only
// after apply (after_unknown mirrors the value's shape, true where unknown).
func (rc resourceChange) unknown(key string) bool {
	return anyTrue(rc.Change.AfterUnknown[key])
}

func anyTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case []any:
		return slices.ContainsFunc(v, anyTrue)
	case map[string]any:
		for _, x := range v {
			if anyTrue(x) {
				return true
			}
		}
	}
	return false
}

// same compares planned values as Terraform does for the SDK-based AWS
// provider: null, "" and empty collections are the same.
func same(a, b any) bool {
	empty := func(v any) bool {
		switch v := v.(type) {
		case nil:
			return true
		case string:
			return v == ""
		case []any:
			return len(v) == 0
		case map[string]any:
			return len(v) == 0
		}
		return false
	}
	if empty(a) && empty(b) {
		return true
	}
	switch a := a.(type) {
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !same(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok {
			return false
		}
		for k := range a {
			if !same(a[k], b[k]) {
				return false
			}
		}
		for k := range b {
			if !same(a[k], b[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// list returns after[key] as a list of objects (a nested block).
func list(v any) []map[string]any {
	items, _ := v.([]any)
	var out []map[string]any
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// ---------------------------------------------------------------- scenarios

type planCase struct {
	name   string
	tfvars string
	checks []planCheck
}

// planCheck is one named check of a plan, run as its own subtest so that
// one failing check does not hide the others.
type planCheck struct {
	name string
	fn   func(t *testing.T, p plan)
}

// planScenario plans sc (its tfvars plus the emulator endpoint and the
// Lambda packages) without refreshing, and returns the plan.
func planScenario(t *testing.T, tf *tfRunner, work string, sc planCase, endpoint, lambdaDir string) plan {
	t.Helper()
	base := fmt.Sprintf("aws_endpoint_url = %q\nlambda_dir = %q\nlambda_architecture = \"x86_64\"\n", endpoint, lambdaDir)
	varFile := filepath.Join(work, "case-"+sc.name+".tfvars")
	if err := os.WriteFile(varFile, []byte(base+sc.tfvars), 0o600); err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(work, "case-"+sc.name+".plan")
	out, err := tf.run("plan", "-input=false", "-no-color", "-lock=false", "-refresh=false", "-var-file="+varFile, "-out="+planFile)
	if err != nil {
		t.Fatalf("terraform plan (%s): %v\n%s", sc.name, err, tail(out, 4000))
	}
	raw, err := tf.output("show", "-json", planFile)
	if err != nil {
		t.Fatalf("terraform show -json: %v", err)
	}
	return parsePlan(t, raw)
}

const vmOnlyTFVars = `
name                   = "drover"
vm_runner_enabled      = true
vm_ami_id              = "ami-12c6146b"
vm_instance_type       = "t3.small"
vm_binary_key          = "bin/drover-linux-amd64"
runner_trigger_enabled = false
longest_task_seconds   = 7200
tags                   = { team = "platform" }
dispatch_auth_type     = "NONE"
dispatch_api_keys_secret_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/drover/api-keys"
`

func planScenarios() []planCase {
	return []planCase{
		{
			// What a first `terraform apply` on AWS gets: nothing but a name.
			name:   "defaults",
			tfvars: "name = \"drover\"\n",
			checks: []planCheck{
				{"dead-letter alarms", func(t *testing.T, p plan) { checkDeadLetterAlarms(t, p, "drover-tasks-dlq", "drover-events-dlq") }},
				{"alarms notify", checkAlarmsNotify},
				// Defaults: runner_timeout_seconds 300, 3 attempts, 5 min
				// backoff cap, tasks visibility timeout 1800.
				{"oldest-message alarm", func(t *testing.T, p plan) { checkOldestMessageAlarm(t, p, "drover-tasks", 3*(300+300)) }},
				{"ListBucket for 404s", checkListBucketUnconditioned},
				{"operational alarms", func(t *testing.T, p plan) { checkOperationalAlarms(t, p, "drover") }},
				{"data protection", func(t *testing.T, p plan) { checkDataProtection(t, p, "drover") }},
				{"collect enqueues workflow steps", checkCollectEnqueues},
				{"tasks redrive above max attempts", checkTasksRedrive},
				{"one queue by default, as before queues existed", checkDefaultQueueOnly},
			},
		},
		{
			// VM runners only, the documented way, with long tasks, a team
			// tag and API-key mode.
			name:   "vm-only",
			tfvars: vmOnlyTFVars,
			checks: []planCheck{
				{"collect triggers stay on", checkTriggers},
				{"scale-in counts running tasks and drains", checkScalesOnRunningTasks},
				{"tags reach instances", func(t *testing.T, p plan) {
					checkVMTags(t, p, map[string]string{"drover:stack": "drover", "team": "platform", "Name": "drover-vm-runner"})
				}},
				{"oldest-message alarm for long tasks", func(t *testing.T, p plan) { checkOldestMessageAlarm(t, p, "drover-tasks", 3*(7200+300)) }},
				{"public function URL permissions", checkPublicURLPermissions},
				{"API keys from SSM", func(t *testing.T, p plan) {
					checkAPIKeysFromSecret(t, p, "arn:aws:ssm:us-east-1:123456789012:parameter/drover/api-keys", "ssm:GetParameter")
				}},
			},
		},
	}
}

// The tasks queue's redrive is the outer safety net only: every attempt
// is a receive, and so is every delivery that starts nothing, so its
// maxReceiveCount must exceed the most attempts a task may ask for (100,
// task.MaxAttemptsLimit) with a margin. The events queue keeps 30.
func checkTasksRedrive(t *testing.T, p plan) {
	receives := func(queue string) float64 {
		for _, rc := range p.changes("aws_sqs_queue") {
			if rc.Change.After["name"] != queue {
				continue
			}
			var rp struct {
				MaxReceiveCount float64 `json:"maxReceiveCount"`
			}
			s, _ := rc.Change.After["redrive_policy"].(string)
			if err := json.Unmarshal([]byte(s), &rp); err != nil {
				t.Fatalf("%s redrive_policy %q: %v", queue, s, err)
			}
			return rp.MaxReceiveCount
		}
		t.Fatalf("no queue %s planned", queue)
		return 0
	}
	const maxAttempts = float64(task.MaxAttemptsLimit)
	if got := receives("drover-tasks"); got < maxAttempts+maxAttempts/2 {
		t.Errorf("tasks queue maxReceiveCount = %v: a task with max_attempts %v is dead-lettered with attempts left (want at least %v)", got, maxAttempts, maxAttempts*1.5)
	}
	if got := receives("drover-events"); got != 30 {
		t.Errorf("events queue maxReceiveCount = %v, want 30", got)
	}
}

// With queues left at its default (default alone), the stack is what it
// was before the variable existed: no other queue, trigger or alarm, the
// alarms under their old keys, and no grant beyond the default queue's.
// (The functions' environments hold queue URLs, unknown at plan time; the
// applied stack checks DROVER_QUEUE_URLS.)
func checkDefaultQueueOnly(t *testing.T, p plan) {
	for _, rc := range p.ResourceChanges {
		if strings.HasPrefix(rc.Address, "module.queue[") || strings.Contains(rc.Address, "runner_queue[") || strings.Contains(rc.Address, "collect_queue_dlq[") {
			t.Errorf("default queues plan %s", rc.Address)
		}
	}
	var names []string
	for _, rc := range p.changes("aws_sqs_queue") {
		names = append(names, fmt.Sprint(rc.Change.After["name"]))
	}
	slices.Sort(names)
	if want := []string{"drover-events", "drover-events-dlq", "drover-tasks", "drover-tasks-dlq", "drover-tasks-dlq-failed"}; !slices.Equal(names, want) {
		t.Errorf("queues planned %v, want %v", names, want)
	}
	var alarms []string
	for _, rc := range p.changes("aws_cloudwatch_metric_alarm") {
		if strings.Contains(rc.Address, ".dead_letters[") || strings.Contains(rc.Address, ".oldest_message_age[") {
			alarms = append(alarms, strings.TrimPrefix(rc.Address, "module.alarms.aws_cloudwatch_metric_alarm."))
		}
	}
	slices.Sort(alarms)
	if want := []string{`dead_letters["events"]`, `dead_letters["tasks"]`, `dead_letters["tasks_unswept"]`, `oldest_message_age["events"]`, `oldest_message_age["tasks"]`}; !slices.Equal(alarms, want) {
		t.Errorf("queue alarms planned %v, want %v", alarms, want)
	}
	l := Layout{Partition: "aws", Region: awstest.Region, Account: awstest.AccountID, Name: "drover", Bucket: "drover-archive-" + awstest.AccountID}
	var pols []RolePolicy
	for _, rc := range p.changes("aws_iam_role_policy") {
		doc, _ := rc.Change.After["policy"].(string)
		pols = append(pols, RolePolicy{Owner: ownerOf(rc.Address), Address: rc.Address, JSON: doc})
	}
	if len(pols) != 3 {
		t.Errorf("%d role policies planned, want dispatch's, runner's and collect's", len(pols))
	}
	for _, problem := range CheckPolicies(l, pols) {
		t.Error(problem)
	}
}

// Workflows on AWS: the collector releases a group's callback and a
// chain's next step, so its function needs the tasks topic (the same one
// dispatch sends to) and may send to the tasks queue.
func checkCollectEnqueues(t *testing.T, p plan) {
	// The environment holds queue URLs, known only after apply: the
	// applied check (checkAPIKeysByReference) compares collect's
	// DROVER_TASKS_TOPIC with dispatch's; here the grant, built from names.
	pol := p.change(t, "module.collect.module.role.aws_iam_role_policy.this")
	doc, _ := pol.Change.After["policy"].(string)
	var d struct {
		Statement []struct {
			Action   stringList `json:"Action"`
			Resource stringList `json:"Resource"`
		} `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("collect's policy: %v", err)
	}
	for _, s := range d.Statement {
		if slices.Contains(s.Action, "sqs:SendMessage") && slices.ContainsFunc(s.Resource, func(r string) bool { return strings.HasSuffix(r, ":drover-tasks") }) {
			return
		}
	}
	t.Errorf("collect may not sqs:SendMessage to the tasks queue: %s", doc)
}

// Wrong today 2: the VMs run only `drover runner`, so VM-only mode must
// pause the runner trigger alone; the collect triggers keep turning events
// and dead letters into statuses.
func checkTriggers(t *testing.T, p plan) {
	want := map[string]bool{
		"aws_lambda_event_source_mapping.runner_tasks":         false,
		"aws_lambda_event_source_mapping.collect_events":       true,
		"aws_lambda_event_source_mapping.collect_tasks_dlq[0]": true,
	}
	for addr, enabled := range want {
		rc := p.change(t, addr)
		if got, _ := rc.Change.After["enabled"].(bool); got != enabled {
			t.Errorf("VM-only mode: %s enabled = %v, want %v (nothing but the collect function reads the events queue)", addr, got, enabled)
		}
	}
}

// Wrong today 3 (plan part): the group scales on tasks waiting plus tasks
// running, so a busy group is not scaled in just because the backlog
// drained, and it drains instances through a terminating lifecycle hook.
func checkScalesOnRunningTasks(t *testing.T, p plan) {
	rc := p.change(t, "module.vm_runner[0].aws_autoscaling_policy.backlog_per_instance")
	var metrics []string
	var expr string
	for _, tt := range list(rc.Change.After["target_tracking_configuration"]) {
		for _, cm := range list(tt["customized_metric_specification"]) {
			for _, m := range list(cm["metrics"]) {
				if e, _ := m["expression"].(string); e != "" && m["return_data"] == true {
					expr = e
				}
				for _, ms := range list(m["metric_stat"]) {
					for _, mm := range list(ms["metric"]) {
						metrics = append(metrics, fmt.Sprintf("%s=%s", m["id"], mm["metric_name"]))
					}
				}
			}
		}
	}
	for _, want := range []string{"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "GroupInServiceInstances"} {
		if !slices.ContainsFunc(metrics, func(m string) bool { return strings.HasSuffix(m, "="+want) }) {
			t.Errorf("scaling metric does not use %s (metrics %v): a group that counts only waiting tasks scales in while tasks run", want, metrics)
		}
	}
	for _, m := range metrics {
		id, _, _ := strings.Cut(m, "=")
		if !regexp.MustCompile(`\b` + id + `\b`).MatchString(expr) {
			t.Errorf("scaling expression %q does not use metric %s", expr, m)
		}
	}

	hook := p.change(t, "module.vm_runner[0].aws_autoscaling_lifecycle_hook.drain")
	if got := hook.Change.After["lifecycle_transition"]; got != "autoscaling:EC2_INSTANCE_TERMINATING" {
		t.Errorf("drain hook transition = %v, want autoscaling:EC2_INSTANCE_TERMINATING", got)
	}
	if got := hook.Change.After["default_result"]; got != "CONTINUE" {
		t.Errorf("drain hook default_result = %v, want CONTINUE", got)
	}
	if got := num(hook.Change.After["heartbeat_timeout"]); got < 900 {
		t.Errorf("drain hook heartbeat_timeout = %v, below the default drain of 900 s", got)
	}
}

// Wrong today 5: an autoscaling group does not inherit provider default
// tags; the instances (and volumes) must get the stack's tags anyway.
func checkVMTags(t *testing.T, p plan, want map[string]string) {
	asg := p.change(t, "module.vm_runner[0].aws_autoscaling_group.this")
	got := map[string]string{}
	for _, tag := range list(asg.Change.After["tag"]) {
		if tag["propagate_at_launch"] == true {
			got[fmt.Sprint(tag["key"])] = fmt.Sprint(tag["value"])
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("autoscaling group propagates tag %s = %q to instances, want %q (tags propagated: %v)", k, got[k], v, got)
		}
	}
	lt := p.change(t, "module.vm_runner[0].aws_launch_template.this")
	specs := map[string]map[string]any{}
	for _, ts := range list(lt.Change.After["tag_specifications"]) {
		tags, _ := ts["tags"].(map[string]any)
		specs[fmt.Sprint(ts["resource_type"])] = tags
	}
	for _, rt := range []string{"instance", "volume"} {
		for k, v := range want {
			if specs[rt][k] != v {
				t.Errorf("launch template tags %ss with %s = %v, want %q", rt, k, specs[rt][k], v)
			}
		}
	}
}

// Wrong today 4: a dead letter must alarm whether it is waiting, in flight
// (a sweep that failed), already received by the sweeper, or sent.
func checkDeadLetterAlarms(t *testing.T, p plan, dlqs ...string) {
	metrics := map[string][]string{}
	for _, rc := range p.changes("aws_cloudwatch_metric_alarm") {
		a := rc.Change.After
		add := func(dims any, name any) {
			if d, ok := dims.(map[string]any); ok {
				if q, ok := d["QueueName"].(string); ok {
					metrics[q] = append(metrics[q], fmt.Sprint(name))
				}
			}
		}
		add(a["dimensions"], a["metric_name"])
		for _, q := range list(a["metric_query"]) {
			for _, m := range list(q["metric"]) {
				add(m["dimensions"], m["metric_name"])
			}
		}
	}
	for _, dlq := range dlqs {
		for _, want := range []string{"NumberOfMessagesSent", "NumberOfMessagesReceived", "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"} {
			if !slices.Contains(metrics[dlq], want) {
				t.Errorf("no alarm on %s's %s (its alarms watch %v): the sweeper empties the tasks DLQ within seconds and a failed sweep is in flight, not visible", dlq, want, metrics[dlq])
			}
		}
	}
}

// Wrong today 4: every alarm notifies someone.
func checkAlarmsNotify(t *testing.T, p plan) {
	alarms := p.changes("aws_cloudwatch_metric_alarm")
	if len(alarms) == 0 {
		t.Fatal("no alarms planned")
	}
	for _, rc := range alarms {
		acts, _ := rc.Change.After["alarm_actions"].([]any)
		if len(acts) == 0 && !rc.unknown("alarm_actions") {
			t.Errorf("%s has no alarm_actions: it fires and nobody hears", rc.Address)
		}
	}
	if len(p.changes("aws_sns_topic")) != 1 {
		t.Errorf("no SNS topic for the alarms by default")
	}
}

// Wrong today 4: a task message normally lives up to its attempts' runs and
// backoffs; the tasks queue's oldest-message alarm must not fire below that.
func checkOldestMessageAlarm(t *testing.T, p plan, queue string, normal float64) {
	found := false
	for _, rc := range p.changes("aws_cloudwatch_metric_alarm") {
		a := rc.Change.After
		if a["metric_name"] != "ApproximateAgeOfOldestMessage" {
			continue
		}
		if d, _ := a["dimensions"].(map[string]any); d["QueueName"] != queue {
			continue
		}
		found = true
		if th := num(a["threshold"]); th <= normal {
			t.Errorf("%s fires at %v s, but a task message normally lives up to %v s (attempts x (longest task + backoff))", rc.Address, th, normal)
		}
	}
	if !found {
		t.Errorf("no oldest-message alarm on %s", queue)
	}
}

// Wrong today 5: S3 answers 404 for a missing key only to a caller allowed
// s3:ListBucket on the bucket, and authorises HeadBucket (readiness) as
// s3:ListBucket; neither request has an s3:prefix, so a grant conditioned
// on it allows neither. (No policy engine runs offline: moto ignores
// conditions. This checks the policy against that documented rule.)
func checkListBucketUnconditioned(t *testing.T, p plan) {
	readers := map[string]bool{}
	for _, rc := range p.changes("aws_iam_role_policy") {
		pol, _ := rc.Change.After["policy"].(string)
		var doc struct {
			Statement []struct {
				Action    stringList      `json:"Action"`
				Resource  stringList      `json:"Resource"`
				Condition json.RawMessage `json:"Condition"`
			} `json:"Statement"`
		}
		if err := json.Unmarshal([]byte(pol), &doc); err != nil {
			t.Errorf("%s: policy not known at plan time or not JSON: %v", rc.Address, err)
			continue
		}
		owner := ownerOf(rc.Address)
		for _, s := range doc.Statement {
			if !slices.Contains(s.Action, "s3:ListBucket") {
				if owner == "dispatch" && slices.Contains(s.Action, "sqs:GetQueueAttributes") {
					readers["dispatch-readyz-queue"] = true
				}
				continue
			}
			readers[owner] = true
			if len(s.Condition) > 0 {
				t.Errorf("%s: s3:ListBucket on %v is conditioned (%s): GetObject of a missing key and HeadBucket carry no s3:prefix, so S3 answers 403, not 404", rc.Address, s.Resource, s.Condition)
			}
		}
	}
	for _, who := range []string{"dispatch", "runner", "dispatch-readyz-queue"} {
		if !readers[who] {
			t.Errorf("no grant for %s (s3:ListBucket for 404s, sqs:GetQueueAttributes for /readyz)", who)
		}
	}
}

// Data protection a platform team expects by default: dead-letter queues
// that take only their source's dead letters, a DLQ for what the sweeper
// fails on, a TLS-only bucket, and a status table with point-in-time
// recovery and deletion protection.
func checkDataProtection(t *testing.T, p plan, name string) {
	arn := "arn:aws:sqs:" + awstest.Region + ":" + awstest.AccountID + ":" + name
	queues := map[string]map[string]any{}
	for _, rc := range p.changes("aws_sqs_queue") {
		queues[fmt.Sprint(rc.Change.After["name"])] = rc.Change.After
	}
	for dlq, source := range map[string]string{name + "-tasks-dlq": arn + "-tasks", name + "-events-dlq": arn + "-events", name + "-tasks-dlq-failed": arn + "-tasks-dlq"} {
		var allow struct {
			RedrivePermission string   `json:"redrivePermission"`
			SourceQueueArns   []string `json:"sourceQueueArns"`
		}
		q, ok := queues[dlq]
		if !ok {
			t.Errorf("no queue %s planned", dlq)
			continue
		}
		if err := json.Unmarshal([]byte(fmt.Sprint(q["redrive_allow_policy"])), &allow); err != nil || allow.RedrivePermission != "byQueue" || !slices.Equal(allow.SourceQueueArns, []string{source}) {
			t.Errorf("%s: redrive_allow_policy %v, want byQueue from %s only", dlq, q["redrive_allow_policy"], source)
		}
	}
	// The redrive target's ARN is known only once that queue exists.
	dlq := p.change(t, "module.tasks_queue.aws_sqs_queue.dlq")
	if rp := fmt.Sprint(dlq.Change.After["redrive_policy"]); !dlq.unknown("redrive_policy") && !strings.Contains(rp, arn+"-tasks-dlq-failed") {
		t.Errorf("the swept tasks DLQ redrives to %s, want %s-tasks-dlq-failed", rp, arn)
	}
	pol := p.change(t, "module.archive.aws_s3_bucket_policy.tls_only[0]").Change.After["policy"]
	if s := fmt.Sprint(pol); !strings.Contains(s, `"aws:SecureTransport":"false"`) || !strings.Contains(s, `"Effect":"Deny"`) {
		t.Errorf("bucket policy does not deny plain HTTP: %v", pol)
	}
	table := p.change(t, "module.status_table.aws_dynamodb_table.this").Change.After
	if table["deletion_protection_enabled"] != true || !strings.Contains(js(table["point_in_time_recovery"]), `"enabled":true`) {
		t.Errorf("status table: deletion protection %v, point-in-time recovery %s; want both on by default", table["deletion_protection_enabled"], js(table["point_in_time_recovery"]))
	}
}

// Alarms a platform team expects next to the queue alarms.
func checkOperationalAlarms(t *testing.T, p plan, name string) {
	have := map[string]bool{}
	for _, rc := range p.changes("aws_cloudwatch_metric_alarm") {
		a := rc.Change.After
		for _, m := range append([]map[string]any{a}, func() []map[string]any {
			var ms []map[string]any
			for _, q := range list(a["metric_query"]) {
				ms = append(ms, list(q["metric"])...)
			}
			return ms
		}()...) {
			d, _ := m["dimensions"].(map[string]any)
			for _, v := range d {
				have[fmt.Sprintf("%v/%v", m["metric_name"], v)] = true
			}
		}
	}
	want := []string{"Url5xxCount/" + name + "-dispatch", "ReadThrottleEvents/" + name + "-status", "WriteThrottleEvents/" + name + "-status"}
	for _, fn := range functionNames {
		want = append(want, "Errors/"+name+"-"+fn, "Throttles/"+name+"-"+fn)
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("no alarm on %s", w)
		}
	}
}

// Wrong today 1: a public function URL needs lambda:InvokeFunctionUrl and,
// for URLs created since October 2025, lambda:InvokeFunction too.
func checkPublicURLPermissions(t *testing.T, p plan) {
	got := map[string]bool{}
	for _, rc := range p.changes("aws_lambda_permission") {
		a := rc.Change.After
		if a["principal"] != "*" {
			continue
		}
		switch a["action"] {
		case "lambda:InvokeFunctionUrl":
			got["url"] = a["function_url_auth_type"] == "NONE"
		case "lambda:InvokeFunction":
			got["invoke"] = true
		}
	}
	if !got["url"] {
		t.Errorf("no public lambda:InvokeFunctionUrl permission with function_url_auth_type NONE")
	}
	if !got["invoke"] {
		t.Errorf("no public lambda:InvokeFunction permission: a function URL created since October 2025 answers 403 without it")
	}
}

// ---------------------------------------------------------------- applied stack

// checkFunctionURLPolicy reads the dispatch function's resource policy
// from the emulator: both public statements of API-key mode must be there.
func checkFunctionURLPolicy(t *testing.T, moto *awstest.Moto, function string) {
	cmd := exec.Command("aws", "lambda", "get-policy", "--function-name", function, "--output", "json")
	cmd.Env = append(awsCLIEnv(), moto.Env()...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws lambda get-policy %s: %v", function, err)
	}
	var resp struct{ Policy string }
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("get-policy answer: %v: %s", err, out)
	}
	var doc struct {
		Statement []struct {
			Action    stringList     `json:"Action"`
			Principal any            `json:"Principal"`
			Condition map[string]any `json:"Condition"`
			// moto keeps the auth type as a field of the statement
			// instead of AWS's condition lambda:FunctionUrlAuthType.
			FunctionUrlAuthType string `json:"FunctionUrlAuthType"`
		} `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(resp.Policy), &doc); err != nil {
		t.Fatalf("policy: %v: %s", err, resp.Policy)
	}
	public := func(p any) bool {
		if p == "*" {
			return true
		}
		m, _ := p.(map[string]any)
		return m["AWS"] == "*"
	}
	got := map[string]bool{}
	for _, s := range doc.Statement {
		if !public(s.Principal) {
			continue
		}
		for _, a := range s.Action {
			got[a] = true
			if a == "lambda:InvokeFunctionUrl" && s.FunctionUrlAuthType != "NONE" && !strings.Contains(fmt.Sprint(s.Condition), "NONE") {
				t.Errorf("public InvokeFunctionUrl statement not limited to auth type NONE:\n%s", resp.Policy)
			}
		}
	}
	for _, a := range []string{"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"} {
		if !got[a] {
			t.Errorf("%s's policy has no public %s statement:\n%s", function, a, resp.Policy)
		}
	}
}

// awsCLIEnv is the environment without the caller's AWS settings.
func awsCLIEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// stateResource returns one resource's values from `terraform show -json`
// of the state.
func stateResource(t *testing.T, raw []byte, address string) map[string]any {
	t.Helper()
	var doc struct {
		Values struct {
			RootModule module `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range doc.Values.RootModule.all() {
		if r.Address == address {
			return r.Values
		}
	}
	t.Fatalf("state has no %s", address)
	return nil
}

// Wrong today 3 (instance part): the runner's grace, systemd's stop
// timeout and the lifecycle hook's timeout nest, and the instance drains
// and completes the hook. st is `terraform show -json` of the state.
func checkVMDrain(t *testing.T, st []byte) {
	lt := stateResource(t, st, "module.vm_runner[0].aws_launch_template.this")
	hook := stateResource(t, st, "module.vm_runner[0].aws_autoscaling_lifecycle_hook.drain")
	ud, err := base64.StdEncoding.DecodeString(fmt.Sprint(lt["user_data"]))
	if err != nil {
		t.Fatalf("user_data: %v", err)
	}
	script := string(ud)
	grace := intIn(t, script, `DROVER_GRACE="(\d+)s"`)
	stop := intIn(t, script, `TimeoutStopSec=(\d+)`)
	hookTimeout := int(num(hook["heartbeat_timeout"]))
	if !(grace > 0 && stop > grace && hookTimeout > stop) {
		t.Errorf("runner grace %d s, systemd stop timeout %d s, hook timeout %d s: each must outlast the one before", grace, stop, hookTimeout)
	}
	for _, want := range []string{
		"autoscaling/target-lifecycle-state",
		"systemctl stop drover-runner.service",
		"complete-lifecycle-action",
		`--lifecycle-hook-name "` + fmt.Sprint(hook["name"]) + `"`,
		`--auto-scaling-group-name "` + fmt.Sprint(hook["autoscaling_group_name"]) + `"`,
		"systemctl enable --now drover-runner.service drover-drain.service drover-protect.service",
		`DROVER_METRICS_ADDR="127.0.0.1:`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("user_data does not contain %q", want)
		}
	}
	runDrainScript(t, script, fmt.Sprint(hook["autoscaling_group_name"]), fmt.Sprint(hook["name"]))
	runProtectScript(t, script, fmt.Sprint(hook["autoscaling_group_name"]))
}

// runProtectScript runs the scale-in protection loop of the applied user
// data against a fake instance metadata service and a fake runner metrics
// endpoint that goes idle, busy (an attempt started whose function has not
// returned), busy, idle, unreadable, idle, and then reports the instance
// terminating. The instance must be protected exactly while busy, with
// one call per change, and the loop must end once it terminates.
func runProtectScript(t *testing.T, script, group string) {
	m := regexp.MustCompile(`(?s)<<'DROVER_PROTECT'\n(.*?)\nDROVER_PROTECT\n`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("user_data has no scale-in protection script")
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls.log")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := "#!/bin/sh\necho \"aws $*\" >> '" + calls + "'\n"
	if err := os.WriteFile(filepath.Join(bin, "aws"), []byte(rec), 0o755); err != nil {
		t.Fatal(err)
	}
	protect := filepath.Join(dir, "protect.sh")
	if err := os.WriteFile(protect, []byte(m[1]+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	const (
		idle = "# HELP go_goroutines x\ngo_goroutines 12\n" +
			`drover_runner_tasks_started_total{function="echo",queue="default"} 2` + "\n" +
			`drover_runner_run_seconds_count{function="echo",queue="default"} 2` + "\n"
		busy = `drover_runner_tasks_started_total{function="echo",queue="default"} 2` + "\n" +
			`drover_runner_tasks_started_total{function="sleep",queue="default"} 1` + "\n" +
			`drover_runner_run_seconds_count{function="echo",queue="default"} 2` + "\n"
	)
	scrapes := []string{idle, busy, busy, idle, "", idle}
	var mu sync.Mutex
	n := 0
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		i := min(n, len(scrapes)-1)
		n++
		if scrapes[i] == "" {
			http.Error(w, "runner restarting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, scrapes[i])
	}))
	defer metrics.Close()
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			fmt.Fprint(w, "token-1")
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "token-1" {
			http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/latest/meta-data/autoscaling/target-lifecycle-state":
			mu.Lock()
			done := n >= len(scrapes)
			mu.Unlock()
			if done {
				fmt.Fprint(w, "Terminated")
				return
			}
			fmt.Fprint(w, "InService")
		case "/latest/meta-data/instance-id":
			fmt.Fprint(w, "i-0123456789abcdef0")
		default:
			http.NotFound(w, r)
		}
	}))
	defer imds.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", protect)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DROVER_IMDS_ENDPOINT="+imds.URL,
		"DROVER_METRICS_URL="+metrics.URL+"/metrics", "DROVER_PROTECT_INTERVAL=0.05")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("protection script: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(calls)
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	call := func(flag string) string {
		return "aws autoscaling set-instance-protection --region " + awstest.Region + " --auto-scaling-group-name " + group +
			" --instance-ids i-0123456789abcdef0 " + flag
	}
	want := []string{call("--no-protected-from-scale-in"), call("--protected-from-scale-in"), call("--no-protected-from-scale-in")}
	if !slices.Equal(got, want) {
		t.Errorf("protection script ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// runDrainScript runs the drain script of the applied user data as the
// instance would, against a fake instance metadata service that reports
// InService a few times and then Terminated, with systemctl and aws
// replaced by recorders: the runner must be stopped only once the instance
// is terminating, and the lifecycle action completed after the stop, for
// this group, hook and instance.
func runDrainScript(t *testing.T, script, group, hook string) {
	m := regexp.MustCompile(`(?s)<<'DROVER_DRAIN'\n(.*?)\nDROVER_DRAIN\n`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("user_data has no drain script")
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls.log")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"systemctl", "aws"} {
		rec := "#!/bin/sh\necho \"" + name + " $*\" >> '" + calls + "'\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(rec), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	drain := filepath.Join(dir, "drain.sh")
	if err := os.WriteFile(drain, []byte(m[1]+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	polls := 0
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			fmt.Fprint(w, "token-1")
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "token-1" {
			http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/latest/meta-data/autoscaling/target-lifecycle-state":
			mu.Lock()
			polls++
			n := polls
			mu.Unlock()
			if n < 3 {
				fmt.Fprint(w, "InService")
				return
			}
			// The runner must still be running when the state turns.
			if b, _ := os.ReadFile(calls); len(b) > 0 {
				t.Errorf("drain script acted before the instance was terminating:\n%s", b)
			}
			fmt.Fprint(w, "Terminated")
		case "/latest/meta-data/instance-id":
			fmt.Fprint(w, "i-0123456789abcdef0")
		default:
			http.NotFound(w, r)
		}
	}))
	defer imds.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", drain)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DROVER_IMDS_ENDPOINT="+imds.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("drain script: %v\n%s", err, out)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatalf("drain script ran neither systemctl nor aws: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"systemctl stop drover-runner.service",
		"aws autoscaling complete-lifecycle-action --region " + awstest.Region + " --auto-scaling-group-name " + group +
			" --lifecycle-hook-name " + hook + " --instance-id i-0123456789abcdef0 --lifecycle-action-result CONTINUE",
	}
	if !slices.Equal(got, want) {
		t.Errorf("drain script ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	mu.Lock()
	defer mu.Unlock()
	if polls < 3 {
		t.Errorf("drain script polled the lifecycle state %d times, want until it read Terminated", polls)
	}
}

func intIn(t *testing.T, s, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Errorf("user_data has no %s", pattern)
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// ---------------------------------------------------------------- second plans

// checkSecondPlan plans vars again on the applied stack (st: its
// `terraform show -json`) into planFile. Every resource for which goes
// reports true (none when goes is nil) must be planned for deletion, and
// every resource in st that goes does not must stay as it is: no change
// except differences that come from how moto_server answers reads
// (listed in emulatorArtifact, each only in its exact form).
func checkSecondPlan(t *testing.T, tf *tfRunner, planFile string, vars []string, st []byte, goes func(address string) bool) {
	wantDeletes := goes != nil
	if goes == nil {
		goes = func(string) bool { return false }
	}
	out, err := tf.run(append([]string{"plan", "-input=false", "-no-color", "-lock=false", "-detailed-exitcode", parallelism, "-out=" + planFile}, vars...)...)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("terraform plan: %v\n%s", err, tail(out, 4000))
		}
	}
	raw, err := tf.output("show", "-json", planFile)
	if err != nil {
		t.Fatalf("terraform show -json: %v", err)
	}
	p := parsePlan(t, raw)
	var doc struct {
		Values struct {
			RootModule module `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal(st, &doc); err != nil {
		t.Fatal(err)
	}
	// Every managed resource of the stack must be in the plan, as a no-op
	// or as what is asked of it: a plan that lost one would pass vacuously.
	applied := map[string]bool{}
	for _, r := range doc.Values.RootModule.all() {
		if r.Mode == "managed" {
			applied[r.Address] = true
		}
	}
	artifacts, deletes := 0, 0
	for _, rc := range p.ResourceChanges {
		if rc.Mode != "managed" {
			continue
		}
		if !applied[rc.Address] {
			t.Errorf("second plan would %v %s, which is not in the applied state", rc.Change.Actions, rc.Address)
			continue
		}
		delete(applied, rc.Address)
		if goes(rc.Address) {
			if !reflect.DeepEqual(rc.Change.Actions, []string{"delete"}) {
				t.Errorf("second plan would %v %s, want it deleted", rc.Change.Actions, rc.Address)
			}
			deletes++
			continue
		}
		if reflect.DeepEqual(rc.Change.Actions, []string{"no-op"}) {
			continue
		}
		if !reflect.DeepEqual(rc.Change.Actions, []string{"update"}) {
			t.Errorf("second plan would %v %s", rc.Change.Actions, rc.Address)
			continue
		}
		keys := map[string]bool{}
		for k := range rc.Change.Before {
			keys[k] = true
		}
		for k := range rc.Change.After {
			keys[k] = true
		}
		for k := range rc.Change.AfterUnknown {
			keys[k] = true
		}
		for k := range keys {
			b, a := rc.Change.Before[k], rc.Change.After[k]
			if same(b, a) && !rc.unknown(k) {
				continue
			}
			if emulatorArtifact(rc.Type, k, b, a, rc.unknown(k)) {
				artifacts++
				continue
			}
			t.Errorf("second plan changes %s.%s: %s -> %s (unknown after apply: %v)", rc.Address, k, js(b), js(a), rc.unknown(k))
		}
	}
	for addr := range applied {
		t.Errorf("second plan does not mention %s (applied)", addr)
	}
	if wantDeletes && deletes == 0 {
		t.Errorf("the applied stack has nothing for this plan to delete: the check passes vacuously")
	}
	t.Logf("second plan: %d resources deleted as asked, no other changes besides %d known moto_server artifacts", deletes, artifacts)
}

// emulatorArtifact reports a second-plan difference that only moto_server
// produces, in the exact form it takes there:
//   - it re-serialises a queue's RedrivePolicy JSON with spaces;
//   - it answers a lifecycle hook with a fixed sample notification target
//     and role that were never set;
//   - it does not return a scaling policy's Enabled flag, and returns an
//     empty predictive scaling block;
//   - it lists a launch template's own tags as a "launch-template" tag
//     specification of its data, so the template gets a new version, and the
//     group's pinned version follows.
func emulatorArtifact(typ, key string, before, after any, unknown bool) bool {
	switch typ + "." + key {
	case "aws_sqs_queue.redrive_policy":
		var b, a any
		bs, _ := before.(string)
		as, _ := after.(string)
		return json.Unmarshal([]byte(bs), &b) == nil && json.Unmarshal([]byte(as), &a) == nil && reflect.DeepEqual(a, b)
	case "aws_autoscaling_lifecycle_hook.notification_target_arn":
		return after == nil && strings.HasSuffix(fmt.Sprint(before), ":my-queue")
	case "aws_autoscaling_lifecycle_hook.role_arn":
		return after == nil && strings.HasSuffix(fmt.Sprint(before), ":role/my-auto-scaling-role")
	case "aws_autoscaling_policy.enabled":
		return before == false && after == true
	case "aws_autoscaling_policy.predictive_scaling_configuration":
		items := list(before)
		return len(list(after)) == 0 && len(items) == 1 && len(list(items[0]["metric_specification"])) == 0
	case "aws_launch_template.tag_specifications":
		var kept []any
		for _, ts := range list(before) {
			if ts["resource_type"] != "launch-template" {
				kept = append(kept, ts)
			}
		}
		return reflect.DeepEqual(kept, after) || (len(kept) == 0 && after == nil)
	case "aws_launch_template.latest_version":
		return unknown
	case "aws_autoscaling_group.launch_template":
		b, a := list(before), list(after)
		if len(b) != 1 || len(a) != 1 || !unknown {
			return false
		}
		delete(b[0], "version")
		delete(a[0], "version")
		return reflect.DeepEqual(b, a)
	}
	return false
}

func js(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return tail(strings.TrimSpace(buf.String()), 400)
}

// ---------------------------------------------------------------- production example

// planProductionExample initialises examples/production with its S3
// backend (a state bucket in moto, S3-native locking) and plans it with
// its example variables, then checks the production settings reached the
// resources.
func planProductionExample(t *testing.T, dir, work string, moto *awstest.Moto) {
	const stateBucket = "drover-example-terraform-state"
	mb := exec.Command("aws", "s3api", "create-bucket", "--bucket", stateBucket)
	mb.Env = append(awsCLIEnv(), moto.Env()...)
	if out, err := mb.CombinedOutput(); err != nil {
		t.Fatalf("create the state bucket: %v: %s", err, out)
	}

	ex := filepath.Join(dir, "examples", "production")
	tf := newTF(t, ex, filepath.Join(work, "tfdata-production"))
	tf.env = append(tf.env, moto.Env()...)
	args := []string{"init", "-input=false", "-no-color",
		"-backend-config=bucket=" + stateBucket,
		"-backend-config=key=drover/prod/terraform.tfstate",
		"-backend-config=region=" + awstest.Region,
		`-backend-config=endpoints={s3="` + moto.Endpoint + `"}`,
		"-backend-config=use_path_style=true",
		"-backend-config=skip_credentials_validation=true",
		"-backend-config=skip_requesting_account_id=true",
		"-backend-config=skip_metadata_api_check=true",
	}
	if d := pluginDir(); d != "" {
		args = append(args, "-plugin-dir="+d)
	}
	if out, err := tf.run(args...); err != nil {
		t.Fatalf("terraform init (S3 backend): %v\n%s", err, out)
	}

	example, err := os.ReadFile(filepath.Join(ex, "prod.tfvars.example"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's values, in the emulator's region and account.
	vars := strings.NewReplacer("eu-west-1", awstest.Region, "111122223333", awstest.AccountID).Replace(string(example))
	vars += fmt.Sprintf("aws_endpoint_url = %q\n", moto.Endpoint)
	varFile := filepath.Join(work, "production.tfvars")
	if err := os.WriteFile(varFile, []byte(vars), 0o600); err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(work, "production.plan")
	out, err := tf.run("plan", "-input=false", "-no-color", "-var-file="+varFile, "-out="+planFile)
	if err != nil {
		t.Fatalf("terraform plan examples/production: %v\n%s", err, tail(out, 4000))
	}
	raw, err := tf.output("show", "-json", planFile)
	if err != nil {
		t.Fatalf("terraform show -json: %v", err)
	}
	p := parsePlan(t, raw)

	boundary := "arn:aws:iam::" + awstest.AccountID + ":policy/workload-boundary"
	key := "arn:aws:kms:" + awstest.Region + ":" + awstest.AccountID + ":key/0d4e5f6a-1b2c-3d4e-5f6a-7b8c9d0e1f2a"
	roles := p.changes("aws_iam_role")
	if len(roles) != 3 {
		t.Errorf("%d roles planned, want 3", len(roles))
	}
	for _, rc := range roles {
		if rc.Change.After["permissions_boundary"] != boundary || rc.Change.After["path"] != "/drover/" {
			t.Errorf("%s: permissions_boundary %v, path %v; want %s under /drover/", rc.Address, rc.Change.After["permissions_boundary"], rc.Change.After["path"], boundary)
		}
	}
	for _, rc := range p.changes("aws_lambda_function") {
		a := rc.Change.After
		if a["filename"] != nil || !strings.HasPrefix(fmt.Sprint(a["s3_key"]), "drover/v1.4.2/arm64/") || a["s3_bucket"] != "acme-artifacts-"+awstest.Region {
			t.Errorf("%s: package filename %v, s3 %v/%v; want the release's object in the packages bucket", rc.Address, a["filename"], a["s3_bucket"], a["s3_key"])
		}
		if tc := list(a["tracing_config"]); len(tc) != 1 || tc[0]["mode"] != "Active" {
			t.Errorf("%s: tracing %v, want Active", rc.Address, a["tracing_config"])
		}
	}
	if got := num(p.change(t, "module.drover.module.dispatch.aws_lambda_function.this").Change.After["reserved_concurrent_executions"]); got != 50 {
		t.Errorf("dispatch reserved concurrency %v, want 50", got)
	}
	for _, rc := range p.changes("aws_sqs_queue") {
		if rc.Change.After["kms_master_key_id"] != key {
			t.Errorf("%s: kms_master_key_id %v, want the stack key", rc.Address, rc.Change.After["kms_master_key_id"])
		}
	}
	sse := p.change(t, "module.drover.module.archive.aws_s3_bucket_server_side_encryption_configuration.this")
	if !strings.Contains(js(sse.Change.After["rule"]), key) {
		t.Errorf("archive bucket not encrypted with the stack key: %s", js(sse.Change.After["rule"]))
	}
	table := p.change(t, "module.drover.module.status_table.aws_dynamodb_table.this").Change.After
	if !strings.Contains(js(table["server_side_encryption"]), key) || table["deletion_protection_enabled"] != true || !strings.Contains(js(table["point_in_time_recovery"]), `"enabled":true`) {
		t.Errorf("status table: encryption %s, deletion protection %v, PITR %s", js(table["server_side_encryption"]), table["deletion_protection_enabled"], js(table["point_in_time_recovery"]))
	}
	for _, addr := range []string{
		"module.drover.module.archive.aws_s3_bucket_versioning.this[0]",
		"module.drover.module.archive.aws_s3_bucket_logging.this[0]",
		"module.drover.module.archive.aws_s3_bucket_policy.tls_only[0]",
		"module.drover.aws_sns_topic.alarms[0]",
		`module.drover.aws_sns_topic_subscription.alarm_email["drover-oncall@example.com"]`,
	} {
		p.change(t, addr)
	}
	if len(p.changes("aws_lambda_permission")) != 0 {
		t.Errorf("production layout (AWS_IAM) plans public function URL permissions")
	}
	checkAlarmsNotify(t, p)
}
