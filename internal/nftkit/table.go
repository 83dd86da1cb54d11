package nftkit

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// MaxElementsPerCall bounds the elements of one add or delete message:
// more than about 2,000 overflow a 16-bit attribute length, and the kernel
// then silently keeps a fraction of them while Flush reports success.
// Several messages can share one atomic Flush.
const MaxElementsPerCall = 1000

// TableExists reports whether the table t names (family and name) is in
// the kernel.
func TableExists(c *nftables.Conn, t *nftables.Table) (bool, error) {
	tables, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	for _, have := range tables {
		if have.Name == t.Name {
			return true, nil
		}
	}
	return false, nil
}

// DeleteTable deletes the table and all it holds in one batch; a table that
// is not there is no error.
func DeleteTable(c *nftables.Conn, t *nftables.Table) error {
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete table %s: %w", TableString(t), err)
	}
	return nil
}

// TableString names a table as nft does, e.g. "inet portcullis".
func TableString(t *nftables.Table) string {
	family := map[nftables.TableFamily]string{
		nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip", nftables.TableFamilyIPv6: "ip6",
	}[t.Family]
	if family == "" {
		family = fmt.Sprintf("family-%d", t.Family)
	}
	return family + " " + t.Name
}

// InputChain is a base chain on the input hook just before the default
// filter priority, accepting what its rules do not decide:
//
//	type filter hook input priority filter - 5; policy accept;
func InputChain(t *nftables.Table, name string) *nftables.Chain {
	policy := nftables.ChainPolicyAccept
	return &nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 5), Policy: &policy}
}

// AddInputChain queues InputChain(t, name) and its rules, each tagged
// with tag in its user data so that what the caller made can be told from
// anyone else's; the caller flushes.
func AddInputChain(c *nftables.Conn, t *nftables.Table, name, tag string, rules [][]expr.Any) {
	ch := c.AddChain(InputChain(t, name))
	for _, exprs := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: []byte(tag)})
	}
}

// AddElements queues the elements' addition in messages of at most
// MaxElementsPerCall; the caller flushes.
func AddElements(c *nftables.Conn, s *nftables.Set, els []nftables.SetElement) error {
	return chunked(c.SetAddElements, s, els)
}

// DeleteElements queues the elements' removal like AddElements.
func DeleteElements(c *nftables.Conn, s *nftables.Set, els []nftables.SetElement) error {
	return chunked(c.SetDeleteElements, s, els)
}

func chunked(op func(*nftables.Set, []nftables.SetElement) error, s *nftables.Set, els []nftables.SetElement) error {
	for i := 0; i < len(els); i += MaxElementsPerCall {
		if err := op(s, els[i:min(i+MaxElementsPerCall, len(els))]); err != nil {
			return fmt.Errorf("queue elements of set %s: %w", s.Name, err)
		}
	}
	return nil
}
