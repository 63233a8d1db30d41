package bus

import "slices"

// Role is one kind of Ferry process, with its own identity at the NATS
// servers of a secure two-site setup (ferry init): each may use only the
// subjects and JetStream API calls its work needs.
type Role string

// The roles, and where each one connects.
const (
	RoleAgent     Role = "agent"     // source site: ferry agent run and ferry hook on a hypervisor
	RolePublisher Role = "publisher" // source site: ferry publisher run and ferry backup
	RoleConsumer  Role = "consumer"  // backup site: ferry consumer run, retention, scrub
	RoleOperator  Role = "operator"  // either site: ferry status, openstack-sync (read only)
	RoleRestore   Role = "restore"   // backup site: ferry restore --to source:POOL/IMAGE
)

// Roles lists every role in a stable order.
func Roles() []Role {
	return []Role{RoleAgent, RolePublisher, RoleConsumer, RoleOperator, RoleRestore}
}

// CommonName is the role's identity: the common name of its client
// certificate, which the servers map to a user (verify_and_map).
func (r Role) CommonName() string { return "ferry-" + string(r) }

// Permissions are the subjects an identity may publish to and subscribe
// to; everything else is refused by the server.
type Permissions struct {
	Publish, Subscribe []string
	// Responses lets the identity answer requests sent to it.
	Responses bool
}

// The streams behind a key-value bucket and an object store.
const (
	kvPrefix  = "KV_"
	objPrefix = "OBJ_"
)

// RolePermissions are the permissions of role at the server of domain
// local, in a two-site setup whose domains are source and backup. Nobody
// may delete a stream; only the consumer, the backup site's
// administrator, may purge, and only the streams it purges by subject in
// its work: FERRY_PAGES (feeds of confirmed backups), FERRY_CHUNKS (a
// corrupt chunk) and the scrub records' object store (a purge request
// carries its subject filter in its body, which permissions do not see).
func RolePermissions(role Role, local, source, backup string) Permissions {
	p := &permBuilder{}
	p.sub(InboxPrefix(role.CommonName()) + ".>")
	src, bak := jsAPI(source, local), jsAPI(backup, local)
	switch role {
	case RoleAgent:
		p.pub(SnapshotSubject+".>", "ferry.hook.>")
		p.sub("ferry.hook.>", "ferry.agent.>")
		p.Responses = true
		p.admin(src, SnapshotStream)
	case RolePublisher:
		p.pub(SnapshotSubject+".>", ChunkSubject+".*", PageSubject+".>", ManifestSubject+".>", RestoredSubject+".>", RestoreStatusSubject+".>", "ferry.agent.>")
		p.admin(src, SnapshotStream)
		p.read(src, SnapshotStream)
		// The lock: ferry backup tells "no consumer is active" from a
		// consumer still working.
		for _, s := range []string{ChunkStream, PageStream, ResultStream, RestoreStream, kvPrefix + StateBucket, kvPrefix + LockBucket} {
			p.read(bak, s)
		}
		p.info(bak, ManifestStream)
		p.health(src)
	case RoleConsumer:
		p.pub(ConfirmedSubject+".>", FailedSubject+".>", "$O."+ScrubBucket+".>")
		for _, s := range backupStreams() {
			p.admin(bak, s)
			p.read(bak, s)
		}
		for _, b := range []string{StateBucket, LockBucket} {
			p.kvWrite(bak, b)
		}
		for _, s := range []string{PageStream, ChunkStream, objPrefix + ScrubBucket} {
			p.pub(bak + "STREAM.PURGE." + s)
		}
		p.health(bak)
	case RoleOperator:
		p.pub(src+"INFO", bak+"INFO")
		p.info(src, SnapshotStream)
		for _, s := range backupStreams() {
			p.info(bak, s)
		}
		p.read(bak, kvPrefix+StateBucket)
		p.read(bak, kvPrefix+LockBucket)
		p.read(src, kvPrefix+HealthBucket)
		p.read(bak, kvPrefix+HealthBucket)
		// ferry restore status: one message by subject, no consumer.
		p.pub(bak + "STREAM.MSG.GET." + ResultStream)
	case RoleRestore:
		p.pub(RestoreSubject+".>", RestoreStatusSubject+".>", ChunkSubject+".*", PageSubject+".>")
		for _, s := range []string{ChunkStream, PageStream, ResultStream, kvPrefix + StateBucket} {
			p.read(bak, s)
		}
		p.info(bak, RestoreStream)
	}
	return p.Permissions
}

// backupStreams are the streams of the backup domain, buckets included.
func backupStreams() []string {
	return []string{ChunkStream, ManifestStream, PageStream, ResultStream, RestoreStream,
		kvPrefix + StateBucket, kvPrefix + LockBucket, objPrefix + ScrubBucket}
}

// jsAPI is the JetStream API prefix of domain as the server of domain
// local checks it. Clients always address a domain by name
// ($JS.<domain>.API.>); a server maps its own domain's prefix to $JS.API.>
// (and $JS.<domain>.API.$KV.> to $KV.>) before it checks permissions, and
// forwards the other domain's unchanged across the leafnode.
func jsAPI(domain, local string) string {
	if domain == local {
		return "$JS.API."
	}
	return "$JS." + domain + ".API."
}

type permBuilder struct{ Permissions }

func (p *permBuilder) pub(s ...string) { p.Publish = appendNew(p.Publish, s...) }
func (p *permBuilder) sub(s ...string) { p.Subscribe = appendNew(p.Subscribe, s...) }

// info: read a stream's and its consumers' state (ferry status --streams).
func (p *permBuilder) info(api, stream string) {
	p.pub(api+"INFO", api+"STREAM.INFO."+stream, api+"CONSUMER.INFO."+stream+".*")
}

// read: consume a stream and get its messages; also what a KV bucket's
// get, keys and watch need. Clients delete the ephemeral consumers they
// made (a refused delete costs a KV key listing 5 s); a reader can so
// also delete a durable of the stream, which its daemon makes again. Acks and flow control replies come in the old
// ($JS.ACK.<stream>...) and the new format ($JS.ACK.<domain>.<account>.<stream>...).
func (p *permBuilder) read(api, stream string) {
	p.info(api, stream)
	p.pub(api+"CONSUMER.CREATE."+stream, api+"CONSUMER.CREATE."+stream+".>",
		api+"CONSUMER.DURABLE.CREATE."+stream+".*", api+"CONSUMER.MSG.NEXT."+stream+".*",
		api+"CONSUMER.DELETE."+stream+".*",
		api+"DIRECT.GET."+stream, api+"DIRECT.GET."+stream+".>", api+"STREAM.MSG.GET."+stream,
		"$JS.ACK."+stream+".>", "$JS.ACK.*.*."+stream+".>",
		"$JS.FC."+stream+".>", "$JS.FC.*.*."+stream+".>")
}

// admin: create a stream or bring its settings up to date (the daemons
// set up their site's streams when they start). An update can also lower
// a stream's limits, which drops messages: only the roles that own a
// site's streams have it.
func (p *permBuilder) admin(api, stream string) {
	p.pub(api+"STREAM.CREATE."+stream, api+"STREAM.UPDATE."+stream)
}

// health: set up the health bucket of a daemon's own domain and write its
// record there; reading the others' records is for the operator.
func (p *permBuilder) health(api string) {
	p.admin(api, kvPrefix+HealthBucket)
	p.info(api, kvPrefix+HealthBucket)
	p.kvWrite(api, HealthBucket)
}

// kvWrite: put, create, update and delete keys of a bucket.
func (p *permBuilder) kvWrite(api, bucket string) {
	if api == "$JS.API." {
		p.pub("$KV." + bucket + ".>")
		return
	}
	p.pub(api + "$KV." + bucket + ".>")
}

func appendNew(list []string, s ...string) []string {
	for _, x := range s {
		if !slices.Contains(list, x) {
			list = append(list, x)
		}
	}
	return list
}
