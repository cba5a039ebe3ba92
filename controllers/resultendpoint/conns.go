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

package resultendpoint

import (
	"container/list"
	"crypto/tls"
	"math"
	"net"
	"net/http"
	"sync"
)

// connLimiter caps the open connections of a listener. At the cap a new
// connection takes the place of an idle one (accepted and waiting for a
// request, or kept alive between requests), which is reset: the least
// recently idle of the new connection's own source when that source has
// one, else the least recently idle of all. So idle connections can never
// lock out a job pod, and a source flooding connections only evicts its
// own. Only when every connection is serving a request does Accept wait
// for one to end. A plain semaphore (netutil.LimitListener) would leave a
// pod's connection in the kernel's backlog behind the idle ones until
// they time out.
type connLimiter struct {
	net.Listener
	max int

	mu       sync.Mutex
	open     int
	idle     list.List             // of *limitedConn, least recently idle first
	bySource map[string]*list.List // the same, per source (sourceOf)
	freed    chan struct{}         // a connection closed (capacity 1)
}

func newConnLimiter(ln net.Listener, limit int) *connLimiter {
	if limit < 1 {
		limit = math.MaxInt
	}
	return &connLimiter{Listener: ln, max: limit, bySource: map[string]*list.List{}, freed: make(chan struct{}, 1)}
}

// limitedConn is a connection counted by its connLimiter.
type limitedConn struct {
	net.Conn
	l      *connLimiter
	source string
	// elem and srcElem are its places in l.idle and l.bySource while it
	// is idle; guarded by l.mu, as closed is.
	elem, srcElem *list.Element
	closed        bool
	once          sync.Once
}

// Accept accepts a connection and makes room for it.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l, source: sourceOf(c.RemoteAddr().String())}
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.setIdle(lc)
			l.mu.Unlock()
			openConnections.Inc()
			return lc, nil
		}
		victim := l.victim(lc.source)
		if victim != nil {
			l.setBusy(victim)
		}
		l.mu.Unlock()
		if victim == nil {
			// Every connection is serving a request: wait for one to end.
			<-l.freed
			continue
		}
		if tc, ok := victim.Conn.(*net.TCPConn); ok {
			// A reset frees the socket at once: no TIME_WAIT per evicted
			// connection.
			_ = tc.SetLinger(0)
		}
		_ = victim.Close()
		evictedConnections.Inc()
	}
}

// victim is the idle connection a new one from source replaces, if any.
func (l *connLimiter) victim(source string) *limitedConn {
	if own := l.bySource[source]; own != nil && own.Len() > 0 {
		return own.Front().Value.(*limitedConn)
	}
	if e := l.idle.Front(); e != nil {
		return e.Value.(*limitedConn)
	}
	return nil
}

// setIdle makes c the most recently idle connection.
func (l *connLimiter) setIdle(c *limitedConn) {
	if c.closed {
		return
	}
	l.setBusy(c)
	c.elem = l.idle.PushBack(c)
	own := l.bySource[c.source]
	if own == nil {
		own = list.New()
		l.bySource[c.source] = own
	}
	c.srcElem = own.PushBack(c)
}

// setBusy takes c out of the idle lists.
func (l *connLimiter) setBusy(c *limitedConn) {
	if c.elem == nil {
		return
	}
	l.idle.Remove(c.elem)
	own := l.bySource[c.source]
	own.Remove(c.srcElem)
	if own.Len() == 0 {
		delete(l.bySource, c.source)
	}
	c.elem, c.srcElem = nil, nil
}

// Close counts the connection out once.
func (c *limitedConn) Close() error {
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		l.open--
		l.setBusy(c)
		c.closed = true
		l.mu.Unlock()
		openConnections.Dec()
		select {
		case l.freed <- struct{}{}:
		default:
		}
	})
	return c.Conn.Close()
}

// connState is the http.Server's ConnState hook: a connection serving a
// request cannot be evicted; one that goes idle becomes the most recent.
func (l *connLimiter) connState(nc net.Conn, st http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateActive, http.StateHijacked:
		l.setBusy(c)
	case http.StateIdle:
		l.setIdle(c)
	}
}
