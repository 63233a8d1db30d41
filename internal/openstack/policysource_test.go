package openstack_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"testing"

	"github.com/ferry-dr/ferry/internal/openstack"
	th "github.com/gophercloud/gophercloud/v2/testhelper"
	fake "github.com/gophercloud/gophercloud/v2/testhelper/client"
)

// Against the real Cinder: of two volumes in a project, only the one with
// ferry:policy comes back, with its policy name.
func TestPolicySourceCinder(t *testing.T) {
	c := noauthClients(t, "0000000000000000000000000000b0b5") // a project of its own
	optedIn := newVolume(t, c, "opted-in", map[string]string{"ferry:policy": "daily", "owner": "ops"})
	newVolume(t, c, "not-opted-in", map[string]string{"owner": "ops"})
	got, err := openstack.PolicySource{Clients: c}.Policies(context.Background())
	if err != nil {
		t.Fatalf("%v (cinder log: %s)", err, cinder.Log())
	}
	if want := map[string]string{optedIn: "daily"}; !maps.Equal(got, want) {
		t.Fatalf("policies %v, want %v", got, want)
	}
}

// Nova server metadata, against gophercloud's test server (no Nova here).
func TestPolicySourceNovaServers(t *testing.T) {
	fs := th.SetupHTTP()
	defer fs.Teardown()
	fs.Mux.HandleFunc("/volumes/detail", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(t, r, "GET")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"volumes": [{"id": "vol-1", "metadata": {"ferry:policy": "hourly"}}, {"id": "vol-2", "metadata": {}}]}`)
	})
	fs.Mux.HandleFunc("/servers/detail", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(t, r, "GET")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"servers": [{"id": "srv-1", "metadata": {"ferry:policy": "daily"}}, {"id": "srv-2", "metadata": {"owner": "x"}}]}`)
	})
	c := &openstack.Clients{Volume: fake.ServiceClient(fs), Compute: fake.ServiceClient(fs)}
	got, err := openstack.PolicySource{Clients: c}.Policies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"vol-1": "hourly", "srv-1": "daily"}; !maps.Equal(got, want) {
		t.Fatalf("policies %v, want %v", got, want)
	}
}
