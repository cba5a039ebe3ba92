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

package chainclient

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
)

// register keeps the provider registered.
func (l *loop) register(ctx context.Context) error {
	if !l.registers() {
		return nil
	}
	if l.reg != nil {
		done, err := l.confirmOne(ctx, l.reg)
		if done {
			l.reg.gone = true
			l.reg = nil
		}
		if err != nil || !done {
			return err
		}
	}
	if l.expires != 0 && l.height < l.expires-l.renewBefore {
		return nil
	}
	p, err := l.o.Chain.Provider(ctx, l.c.address)
	if err != nil {
		return unreachable("query provider", err)
	}
	if p != nil {
		l.fitMargin(p)
	}
	if p != nil && l.height < p.GetExpiresHeight()-l.renewBefore {
		l.expires = p.GetExpiresHeight()
		return nil
	}
	if p != nil {
		l.expires = p.GetExpiresHeight()
	}
	msg, err := l.registration(ctx)
	if err != nil {
		return err
	}
	f, err := l.sign(msg, 0)
	if err != nil {
		return err
	}
	l.c.log.Info("Registering provider", "tx", f.hash, "expiresHeight", l.expires)
	br, err := l.o.Chain.BroadcastSync(ctx, f.txBytes)
	if err != nil {
		// The bytes may have arrived: keep them and resend.
		l.reg = f
		l.nextSeq++
		return unreachable("broadcast registration", err)
	}
	switch classify(br.Code, br.Codespace) {
	case outcomeAccepted:
		f.sentHeight = l.height
		l.reg = f
		l.nextSeq++
		return nil
	case outcomeWrongSequence:
		exp, ok := expectedSequence(br.Log)
		return l.resync(ctx, exp, ok)
	default:
		return fmt.Errorf("chain refused provider registration: code %d (%s): %s", br.Code, br.Codespace, br.Log)
	}
}

// fitMargin sets the renewal margin for the validity the chain granted p's
// committed registration: RenewBeforeBlocks, unless that is not below the
// validity, which would renew (and pay for) a registration at every step;
// then half the validity, with one warning.
func (l *loop) fitMargin(p *aivmv1.Provider) {
	validity := p.GetExpiresHeight() - p.GetRegisteredHeight()
	if validity <= 0 {
		return
	}
	l.renewBefore = l.o.RenewBeforeBlocks
	if l.renewBefore < validity {
		return
	}
	l.renewBefore = validity / 2
	if !l.marginWarned {
		l.marginWarned = true
		l.c.log.Info("RenewBeforeBlocks is not below the registration validity the chain grants; renewing when half of it is left",
			"renewBeforeBlocks", l.o.RenewBeforeBlocks, "validityBlocks", validity, "effectiveRenewBeforeBlocks", l.renewBefore)
	}
}

func (l *loop) registers() bool {
	return l.o.Registration != nil || l.o.RegistrationFunc != nil
}

// registration returns the message to register with.
func (l *loop) registration(ctx context.Context) (*aivmv1.MsgRegisterProvider, error) {
	var msg *aivmv1.MsgRegisterProvider
	if l.o.RegistrationFunc != nil {
		m, err := l.o.RegistrationFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("build provider registration: %w", err)
		}
		if m == nil {
			return nil, errors.New("build provider registration: no message")
		}
		msg = proto.Clone(m).(*aivmv1.MsgRegisterProvider)
	} else {
		msg = proto.Clone(l.o.Registration).(*aivmv1.MsgRegisterProvider)
	}
	msg.Provider = l.c.address
	return msg, nil
}

func (l *loop) settleRegistration(ctx context.Context, f *flight, code uint32, codespace, log string) error {
	switch classify(code, codespace) {
	case outcomeAccepted:
		p, err := l.o.Chain.Provider(ctx, l.c.address)
		if err != nil {
			return unreachable("query provider", err)
		}
		if p == nil {
			return errors.New("provider registration committed but the chain does not know the provider")
		}
		l.expires = p.GetExpiresHeight()
		l.fitMargin(p)
		l.c.log.Info("Provider registered", "tx", f.hash, "expiresHeight", l.expires)
		l.c.metrics.transactions.WithLabelValues("registration").Inc()
		return nil
	case outcomeWrongSequence:
		exp, ok := expectedSequence(log)
		return l.resync(ctx, exp, ok)
	default:
		return fmt.Errorf("chain refused provider registration %s: code %d (%s): %s", f.hash, code, codespace, log)
	}
}
