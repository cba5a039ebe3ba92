/*
Copyright 2026 The aivm-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Bounds of spec.parameters (api/v1alpha1 GenerationParameters); the
// runtime checks them again because a runtime may be started by hand.
const (
	DefaultMaxTokens = 256
	maxMaxTokens     = 131072
	maxStops         = 8
	maxStopBytes     = 128
)

// Parameters are the generation parameters of AIVM_PARAMETERS: the job's
// spec.parameters, with the Kernel's seed filled in when the job sets none.
type Parameters struct {
	MaxTokens   int
	Temperature float64
	TopP        float64
	Seed        int64
	Stop        []string
}

// rawParameters is the JSON form. temperature and topP are decimal strings
// in the API ("0.7"); plain JSON numbers are accepted too.
type rawParameters struct {
	MaxTokens   *int64       `json:"maxTokens"`
	Temperature *json.Number `json:"temperature"`
	TopP        *json.Number `json:"topP"`
	Seed        *int64       `json:"seed"`
	Stop        []string     `json:"stop"`
}

// ParseParameters decodes and checks AIVM_PARAMETERS. Empty means all
// defaults: 256 tokens, greedy (temperature 0), topP 1, seed 0. An unknown
// field is refused: ignoring a parameter would change the output silently.
func ParseParameters(s string) (Parameters, error) {
	p := Parameters{MaxTokens: DefaultMaxTokens, TopP: 1}
	if s == "" {
		return p, nil
	}
	var raw rawParameters
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return p, fmt.Errorf("not the JSON of spec.parameters: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return p, errors.New("not the JSON of spec.parameters: trailing data after the object")
	}
	if raw.MaxTokens != nil {
		if *raw.MaxTokens < 1 || *raw.MaxTokens > maxMaxTokens {
			return p, fmt.Errorf("maxTokens %d is not between 1 and %d", *raw.MaxTokens, maxMaxTokens)
		}
		p.MaxTokens = int(*raw.MaxTokens)
	}
	var err error
	if raw.Temperature != nil {
		if p.Temperature, err = decimal("temperature", *raw.Temperature); err != nil {
			return p, err
		}
		if p.Temperature < 0 || p.Temperature > 2 {
			return p, fmt.Errorf("temperature %v is not between 0 and 2", p.Temperature)
		}
	}
	if raw.TopP != nil {
		if p.TopP, err = decimal("topP", *raw.TopP); err != nil {
			return p, err
		}
		if p.TopP <= 0 || p.TopP > 1 {
			return p, fmt.Errorf("topP %v is not above 0 and at most 1", p.TopP)
		}
	}
	if raw.Seed != nil {
		if *raw.Seed < 0 {
			return p, fmt.Errorf("seed %d is negative", *raw.Seed)
		}
		p.Seed = *raw.Seed
	}
	if len(raw.Stop) > maxStops {
		return p, fmt.Errorf("%d stop sequences; at most %d", len(raw.Stop), maxStops)
	}
	for i, s := range raw.Stop {
		if s == "" || len(s) > maxStopBytes {
			return p, fmt.Errorf("stop[%d] must be 1 to %d bytes", i, maxStopBytes)
		}
	}
	p.Stop = raw.Stop
	return p, nil
}

// decimal reads a JSON number or a string holding one ("0.7").
func decimal(name string, n json.Number) (float64, error) {
	s := string(n)
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a decimal number", name, s)
	}
	return f, nil
}
