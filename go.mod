module github.com/droverhq/drover

go 1.26.0

require (
	github.com/oklog/ulid/v2 v2.1.2 // indirect
	gocloud.dev v0.47.0 // indirect
)
