package sandbox

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"syscall"
	"testing"
)

// tgz returns a .tar.gz of name -> body, executable if the name is start.
func tgz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		mode := int64(0o644)
		if name == "start" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestRun(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("SKIP: this machine cannot build the sandbox: %v", err)
	}
	// drover dev runs with umask 077: the sandbox must not inherit it.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	b := tgz(t, map[string]string{"start": "#!/bin/sh\necho hello $1; id; grep drover /etc/passwd; ls /usr/bin/env; mkdir result; echo x > result/y\n"})
	var stdout, stderr bytes.Buffer
	var archive []byte
	out, err := Run(context.Background(), &Spec{
		Bundle: bytes.NewReader(b), BundleSize: int64(len(b)),
		Argv: []string{"world"}, Env: []string{"PATH=/usr/bin:/bin"},
		Stdout: &stdout, Stderr: &stderr,
		Result: func(r io.Reader) (err error) {
			archive, err = io.ReadAll(r)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "hello world\nuid=1000(drover) gid=1000(drover) groups=1000(drover)\ndrover:x:1000:1000:drover:/work:/bin/sh\n/usr/bin/env\n"
	if stdout.String() != want || stderr.Len() != 0 || !out.Exited || out.ExitCode != 0 || out.Limit != nil {
		t.Errorf("outcome %+v\nstdout %q, want %q\nstderr %q", out, stdout.String(), want, stderr.String())
	}
	if !out.Result {
		t.Fatal("no result")
	}
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "y" {
		t.Fatalf("result entry %v, %v", hdr, err)
	}
	if body, _ := io.ReadAll(tr); string(body) != "x\n" {
		t.Errorf("result/y = %q", body)
	}
	leftCgroups(t)
}
