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

package builtin

import (
	"encoding/json"
	"fmt"
)

// Config is the part of a Hugging Face GPT-2 config.json the engine uses.
type Config struct {
	NLayer           int     `json:"n_layer"`
	NHead            int     `json:"n_head"`
	NEmbd            int     `json:"n_embd"`
	NPositions       int     `json:"n_positions"`
	VocabSize        int     `json:"vocab_size"`
	NInner           int     `json:"n_inner,omitempty"` // 0: 4 * n_embd
	LayerNormEpsilon float64 `json:"layer_norm_epsilon"`
}

// rawConfig also reads the fields that would change the arithmetic, so a
// model that needs them is refused instead of computed wrongly.
type rawConfig struct {
	Config
	NCtx                       int      `json:"n_ctx"`
	ModelType                  string   `json:"model_type"`
	ActivationFunction         string   `json:"activation_function"`
	ScaleAttnByInverseLayerIdx bool     `json:"scale_attn_by_inverse_layer_idx"`
	ScaleAttnWeights           *bool    `json:"scale_attn_weights"`
	LayerNormEpsilonPresent    *float64 `json:"layer_norm_epsilon"`
}

// Upper bounds that keep a hostile config from asking for absurd memory
// before the safetensors shapes are even compared.
const (
	maxLayers    = 1 << 10
	maxEmbd      = 1 << 16
	maxPositions = 1 << 20
	maxVocab     = 1 << 22
)

// ParseConfig reads config.json and checks it describes a GPT-2 the engine
// computes exactly.
func ParseConfig(b []byte) (Config, error) {
	var rc rawConfig
	if err := json.Unmarshal(b, &rc); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	c := rc.Config
	if c.NPositions == 0 {
		c.NPositions = rc.NCtx
	}
	// The pointer field shadows the embedded one, so that an absent
	// epsilon takes GPT-2's default and an explicit 0 is refused.
	c.LayerNormEpsilon = 1e-5
	if rc.LayerNormEpsilonPresent != nil {
		c.LayerNormEpsilon = *rc.LayerNormEpsilonPresent
	}
	if c.NInner == 0 {
		c.NInner = 4 * c.NEmbd
	}
	switch {
	case rc.ModelType != "" && rc.ModelType != "gpt2":
		return Config{}, fmt.Errorf("config.json: model_type %q, the builtin engine runs gpt2", rc.ModelType)
	case rc.ActivationFunction != "" && rc.ActivationFunction != "gelu_new" && rc.ActivationFunction != "gelu_pytorch_tanh":
		return Config{}, fmt.Errorf("config.json: activation_function %q, the builtin engine computes gelu_new (tanh)", rc.ActivationFunction)
	case rc.ScaleAttnByInverseLayerIdx:
		return Config{}, fmt.Errorf("config.json: scale_attn_by_inverse_layer_idx is not supported")
	case rc.ScaleAttnWeights != nil && !*rc.ScaleAttnWeights:
		return Config{}, fmt.Errorf("config.json: scale_attn_weights=false is not supported")
	}
	for _, f := range []struct {
		name     string
		v, limit int
	}{
		{"n_layer", c.NLayer, maxLayers},
		{"n_head", c.NHead, maxEmbd},
		{"n_embd", c.NEmbd, maxEmbd},
		{"n_positions", c.NPositions, maxPositions},
		{"vocab_size", c.VocabSize, maxVocab},
		{"n_inner", c.NInner, 4 * maxEmbd},
	} {
		if f.v <= 0 || f.v > f.limit {
			return Config{}, fmt.Errorf("config.json: %s = %d, want 1..%d", f.name, f.v, f.limit)
		}
	}
	if c.NEmbd%c.NHead != 0 {
		return Config{}, fmt.Errorf("config.json: n_embd %d is not a multiple of n_head %d", c.NEmbd, c.NHead)
	}
	if !(c.LayerNormEpsilon > 0 && c.LayerNormEpsilon < 1) {
		return Config{}, fmt.Errorf("config.json: layer_norm_epsilon %v, want a small positive number", c.LayerNormEpsilon)
	}
	return c, nil
}
