package virttest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/virt"
)

// RBDDisk is a guest disk on Ceph, attached through QEMU's rbd driver
// (qemu-block-extra) with cephx: libvirt hands QEMU the key from the
// secret SecretUUID (see virt.Conn.DefineCephSecret).
type RBDDisk struct {
	Pool, Image string
	Host, Port  string // one monitor (msgr v1 or v2 address)
	User        string // cephx user without "client.", e.g. "admin"
	SecretUUID  string
}

// Guest is a tiny TCG guest (no KVM needed): the host's kernel booted
// directly, 256 MiB, one vCPU, the guest agent on its virtio-serial
// channel, the serial console in a log file.
type Guest struct {
	Name    string
	UUID    string
	Boot    Boot
	Disks   []RBDDisk // vda, vdb, ...: the first is mounted on /data
	Console string    // path of the serial console log
	// AgentSocket is the host end of the agent channel. libvirt's default
	// path under a temporary config dir exceeds the 108-byte limit of
	// unix socket paths.
	AgentSocket string
}

// XML returns the domain definition.
func (g Guest) XML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<domain type='qemu'>
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 panic=-1 mitigations=off</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
`, esc(g.Name), g.UUID, esc(g.Boot.Kernel), esc(g.Boot.Initrd))
	for i, d := range g.Disks {
		fmt.Fprintf(&b, `    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback'/>
      <source protocol='rbd' name='%s/%s'>
        <host name='%s' port='%s'/>
      </source>
      <auth username='%s'><secret type='ceph' uuid='%s'/></auth>
      <target dev='vd%c' bus='virtio'/>
    </disk>
`, esc(d.Pool), esc(d.Image), esc(d.Host), esc(d.Port), esc(d.User), d.SecretUUID, 'a'+i)
	}
	fmt.Fprintf(&b, `    <serial type='file'><source path='%s'/><target port='0'/></serial>
    <console type='file'><source path='%s'/><target type='serial' port='0'/></console>
    <channel type='unix'><source mode='bind' path='%s'/><target type='virtio' name='%s'/></channel>
    <memballoon model='none'/>
  </devices>
</domain>
`, esc(g.Console), esc(g.Console), esc(g.AgentSocket), AgentChannel)
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// ConsoleTail returns the end of the guest's serial console, for error messages.
func (g Guest) ConsoleTail() string { return tailOf(g.Console, 30) }

// NewGuest builds the boot files (once per Daemons) and describes a guest
// named name using disks; its console log lives under the daemons' dir.
func (d *Daemons) NewGuest(name, uuid string, disks []RBDDisk) (Guest, error) {
	dir := filepath.Join(d.Dir, "guest")
	initrd := filepath.Join(dir, "initrd.gz")
	boot := Boot{Initrd: initrd}
	if !fileExists(initrd) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Guest{}, err
		}
		var err error
		if boot, err = BuildBoot(dir); err != nil {
			return Guest{}, fmt.Errorf("build the guest's initramfs: %w", err)
		}
	} else {
		ver, err := newestKernel()
		if err != nil {
			return Guest{}, err
		}
		boot.Kernel, boot.KernelVersion = "/boot/vmlinuz-"+ver, ver
	}
	return Guest{Name: name, UUID: uuid, Boot: boot, Disks: disks,
		Console:     filepath.Join(d.Dir, "log", name+".console.log"),
		AgentSocket: filepath.Join(d.Dir, "sock", uuid[:8]+".agent")}, nil
}

// WaitAgent waits until the guest agent answers guest-ping, and fails with
// the console's last lines when it does not within timeout.
func WaitAgent(c *virt.Conn, g Guest, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.AgentCommand(g.Name, `{"execute":"guest-ping"}`, 2*time.Second)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("guest %s: agent not answering after %s: %v%s", g.Name, timeout, err, g.ConsoleTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FreezeStatus asks the guest agent itself whether the guest's filesystems
// are "frozen" or "thawed" (guest-fsfreeze-status), not libvirt.
func FreezeStatus(c *virt.Conn, name string) (string, error) {
	raw, err := c.AgentCommand(name, `{"execute":"guest-fsfreeze-status"}`, 10*time.Second)
	if err != nil {
		return "", err
	}
	var reply struct{ Return string }
	if err := json.Unmarshal([]byte(raw), &reply); err != nil {
		return "", fmt.Errorf("guest-fsfreeze-status reply %q: %w", raw, err)
	}
	return reply.Return, nil
}

// Exec runs a shell script in the guest through the agent's guest-exec and
// returns its output; a non-zero exit status is an error.
func Exec(c *virt.Conn, name, script string, timeout time.Duration) (string, error) {
	cmd, _ := json.Marshal(map[string]any{"execute": "guest-exec", "arguments": map[string]any{
		"path": "/bin/sh", "arg": []string{"-c", script}, "capture-output": true}})
	raw, err := c.AgentCommand(name, string(cmd), 10*time.Second)
	if err != nil {
		return "", err
	}
	var started struct {
		Return struct{ PID int }
	}
	if err := json.Unmarshal([]byte(raw), &started); err != nil {
		return "", fmt.Errorf("guest-exec reply %q: %w", raw, err)
	}
	status := fmt.Sprintf(`{"execute":"guest-exec-status","arguments":{"pid":%d}}`, started.Return.PID)
	deadline := time.Now().Add(timeout)
	for {
		raw, err := c.AgentCommand(name, status, 10*time.Second)
		if err != nil {
			return "", err
		}
		var st struct {
			Return struct {
				Exited   bool
				ExitCode int    `json:"exitcode"`
				OutData  string `json:"out-data"`
				ErrData  string `json:"err-data"`
			}
		}
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return "", fmt.Errorf("guest-exec-status reply %q: %w", raw, err)
		}
		if st.Return.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.Return.OutData)
			errOut, _ := base64.StdEncoding.DecodeString(st.Return.ErrData)
			if st.Return.ExitCode != 0 {
				return string(out), fmt.Errorf("guest %s: %q exited %d: %s", name, script, st.Return.ExitCode, errOut)
			}
			return string(out), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("guest %s: %q still running after %s", name, script, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
