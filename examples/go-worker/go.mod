module sayiir.dev/go-worker

go 1.19
