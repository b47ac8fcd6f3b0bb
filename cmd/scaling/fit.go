package main

import (
	"context"
	"errors"
	"io"
)

func fit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}

func forecastCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
