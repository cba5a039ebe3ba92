package deps

import (
	_ "cosmossdk.io/api/cosmos/tx/v1beta1"
	_ "github.com/NVIDIA/go-nvml/pkg/nvml"
	_ "github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	_ "github.com/cometbft/cometbft-db"
	_ "github.com/cometbft/cometbft/node"
	_ "github.com/cometbft/cometbft/rpc/client/http"
	_ "github.com/cosmos/go-bip39"
	_ "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "k8s.io/client-go/kubernetes"
	_ "sigs.k8s.io/controller-runtime"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
)
