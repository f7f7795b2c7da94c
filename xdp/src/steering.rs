//! Loading the steering program and attaching it to an interface through a
//! bpf_link: the program goes away when the `Steering` is dropped or when the
//! process dies, even by SIGKILL, because the kernel detaches a link when its
//! last file descriptor closes.
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use libbpf_rs::query::{LinkInfoIter, LinkTypeInfo};
use libbpf_rs::{libbpf_sys, MapCore, MapFlags, MapHandle, Object, ObjectBuilder, ProgramImpl};

use crate::config::{SteerConfig, MAX_QUEUES};
use crate::error::{Error, Result};
use crate::{log, sys};

/// The compiled steering program (bpf/steer.bpf.c, built by build.rs).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));

/// How to attach: aya's and the kernel's modes, named for what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`): fast, needs driver support.
    Native,
    /// In the generic network stack (`XDP_FLAGS_SKB_MODE`): works on any
    /// interface, after the kernel has built an skb; AF_XDP copy mode only.
    Generic,
    /// Native, falling back to generic if the driver refuses.
    Auto,
}

/// The mode the program was attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachedMode {
    /// Driver mode.
    Native,
    /// Generic (skb) mode.
    Generic,
}

impl AttachedMode {
    fn flags(self) -> u32 {
        match self {
            AttachedMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            AttachedMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }

    /// "native" or "generic", as the CLI and result files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An interface, by name or index, looked up in the calling thread's network
/// namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iface<'a> {
    /// By name, e.g. "eth0".
    Name(&'a str),
    /// By ifindex.
    Index(u32),
}

impl<'a> From<&'a str> for Iface<'a> {
    fn from(name: &'a str) -> Self {
        Iface::Name(name)
    }
}

impl From<u32> for Iface<'_> {
    fn from(index: u32) -> Self {
        Iface::Index(index)
    }
}

impl Iface<'_> {
    /// (ifindex, name) in the calling thread's network namespace.
    pub(crate) fn resolve(self) -> Result<(u32, String)> {
        let not_found = |iface: String, source| Error::NoSuchInterface { iface, source };
        match self {
            Iface::Name(name) => sys::if_nametoindex(name)
                .map(|i| (i, name.to_owned()))
                .map_err(|e| not_found(name.to_owned(), e)),
            Iface::Index(i) => sys::if_indextoname(i)
                .map(|n| (i, n))
                .map_err(|e| not_found(format!("#{i}"), e)),
        }
    }
}

/// An XDP program found on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    /// Its program id (`bpftool prog show id N`).
    pub prog_id: u32,
    /// How it is attached: "native", "generic" or "offload".
    pub mode: &'static str,
    /// The bpf_link that holds it, if it was attached through one.
    pub link_id: Option<u32>,
}

/// How `force` made room for our program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The old program was held by a bpf_link, which was detached
    /// (`BPF_LINK_DETACH`); its owner keeps a defunct link.
    DetachedLink {
        /// The old program.
        prog_id: u32,
        /// The link that held it.
        link_id: u32,
    },
    /// The old program was attached through netlink and was detached there,
    /// naming the program expected (so a newer one is never removed).
    DetachedNetlink {
        /// The old program.
        prog_id: u32,
    },
}

/// The steering program's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames redirected to an AF_XDP socket.
    pub steered: u64,
    /// Frames not for the stack, passed to the kernel.
    pub passed: u64,
    /// Frames for the stack whose queue had no socket: passed to the kernel.
    pub no_socket: u64,
}

const COUNTER_STEERED: u32 = 0;
const COUNTER_PASSED: u32 = 1;
const COUNTER_NO_SOCKET: u32 = 2;

/// The steering program, loaded for one interface and (once
/// [`Steering::attach_loaded`] ran) attached to it.
///
/// Dropping it detaches the program and frees its maps.
pub struct Steering {
    // Field order is drop order: the link goes before the object.
    attached: OnceLock<Attached>,
    xsks: MapHandle,
    counters: MapHandle,
    _object: Object,
    iface: String,
    ifindex: u32,
    prog_id: u32,
    requested: XdpMode,
    /// What was on the interface at load time, to be detached at attach
    /// (only when `force`).
    existing: Option<Existing>,
}

/// How the program went onto the interface.
struct Attached {
    link: OwnedFd,
    mode: AttachedMode,
    replaced: Option<Replaced>,
    native_error: Option<io::Error>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        // Detach now, even if some other process holds a copy of the link fd
        // (e.g. `bpftool link`); closing the fd afterwards frees the link.
        // ENOLINK/ENOENT: `force` elsewhere detached it already.
        let _ = sys::link_detach(self.link.as_fd());
    }
}

impl fmt::Debug for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steering")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode())
            .field("prog_id", &self.prog_id)
            .field("replaced", &self.replaced())
            .finish_non_exhaustive()
    }
}

/// The XDP program on `iface` (in the calling thread's namespace), if any.
pub fn existing_program<'a>(iface: impl Into<Iface<'a>>) -> Result<Option<Existing>> {
    let (ifindex, name) = iface.into().resolve()?;
    query(ifindex, &name)
}

fn query(ifindex: u32, iface: &str) -> Result<Option<Existing>> {
    let a = sys::xdp_query(ifindex).map_err(|source| Error::Syscall {
        iface: iface.to_owned(),
        call: "bpf_xdp_query",
        source,
        hint: "run as root on a kernel with XDP",
    })?;
    let (prog_id, mode) = if a.drv != 0 {
        (a.drv, "native")
    } else if a.skb != 0 {
        (a.skb, "generic")
    } else if a.hw != 0 {
        (a.hw, "offload")
    } else {
        return Ok(None);
    };
    Ok(Some(Existing {
        prog_id,
        mode,
        link_id: link_holding(prog_id, ifindex),
    }))
}

/// The processes that hold bpf_link `link_id` open: each fd of each process
/// that is a bpf_link, whose fdinfo names that link id. (A link lives as
/// long as one of these fds; its creator is usually the only holder.)
pub fn link_holders(link_id: u32) -> Vec<u32> {
    let wanted = format!("link_id:\t{link_id}");
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let fds = p.path().join("fd");
        let holds = std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:bpf_link")
                    && std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                        .is_ok_and(|info| info.lines().any(|l| l == wanted))
            });
        if holds {
            out.push(pid);
        }
    }
    out
}

/// The id of the XDP link that holds `prog_id` on `ifindex`, if one does.
/// (Ifindexes repeat across namespaces; the program id does not.)
fn link_holding(prog_id: u32, ifindex: u32) -> Option<u32> {
    LinkInfoIter::default()
        .find(|l| {
            l.prog_id == prog_id && matches!(&l.info, LinkTypeInfo::Xdp(x) if x.ifindex == ifindex)
        })
        .map(|l| l.id)
}

fn hint_for(errno: Option<i32>, mode: AttachedMode) -> &'static str {
    match (errno, mode) {
        (Some(libc::EBUSY), _) | (Some(libc::EEXIST), _) => {
            "another XDP program was attached meanwhile: check `ip link show`, retry with --force"
        }
        (Some(libc::EPERM), _) | (Some(libc::EACCES), _) => {
            "run as root (CAP_BPF and CAP_NET_ADMIN)"
        }
        (Some(libc::EOPNOTSUPP), AttachedMode::Native) => {
            "the driver has no native XDP: use --xdp-mode generic or auto"
        }
        (Some(libc::ERANGE), AttachedMode::Native) | (Some(libc::EINVAL), AttachedMode::Native) => {
            "the driver refused native XDP (on veth: the peer's MTU must be at most 3506, and LRO off): lower the MTU or use --xdp-mode generic"
        }
        _ => "check `dmesg` and `ip link show`; --xdp-mode generic works on any interface",
    }
}

impl Steering {
    /// Loads the steering program configured by `config` and attaches it to
    /// `iface` (in the calling thread's network namespace) in `mode`:
    /// [`Steering::load`], then [`Steering::attach_loaded`].
    pub fn attach<'a>(
        iface: impl Into<Iface<'a>>,
        mode: XdpMode,
        config: &SteerConfig,
        force: bool,
    ) -> Result<Steering> {
        let s = Steering::load(iface, mode, config, force)?;
        s.attach_loaded()?;
        Ok(s)
    }

    /// Loads the steering program for `iface` (in the calling thread's
    /// network namespace) without attaching it: its map can take sockets
    /// first, so that the program steers every queue from the moment it is
    /// attached, and a queue that cannot take a socket is found before
    /// anything on the interface is touched.
    ///
    /// An interface that already carries an XDP program is refused with
    /// [`Error::Busy`] unless `force`, in which case the old program is
    /// detached at [`Steering::attach_loaded`] and [`Steering::replaced`]
    /// says how.
    pub fn load<'a>(
        iface: impl Into<Iface<'a>>,
        mode: XdpMode,
        config: &SteerConfig,
        force: bool,
    ) -> Result<Steering> {
        let (ifindex, name) = iface.into().resolve()?;
        let image = config.to_bytes()?;

        let existing = query(ifindex, &name)?;
        if let (Some(e), false) = (existing, force) {
            return Err(Error::Busy {
                iface: name,
                prog_id: e.prog_id,
                mode: e.mode,
                link_id: e.link_id,
                holders: e.link_id.map(link_holders).unwrap_or_default(),
            });
        }

        // Load before touching the interface: a load error leaves it as it was.
        let object = load(OBJECT, &image, config.multi_buffer)?;
        let prog = object
            .progs()
            .find(|p| p.name() == "steer")
            .expect("the object defines the `steer` program");
        let prog_fd = prog.as_fd();
        let prog_id = ProgramImpl::id_from_fd(prog_fd).map_err(|source| Error::Load {
            call: "bpf_obj_get_info_by_fd",
            hint: LOAD_HINT,
            source,
            verifier_log: String::new(),
        })?;
        let map = |wanted: &'static str| -> Result<MapHandle> {
            let m = object
                .maps()
                .find(|m| m.name() == wanted)
                .expect("the object defines its maps");
            MapHandle::try_from(&m).map_err(|source| Error::Map {
                iface: name.clone(),
                call: "dup",
                map: wanted,
                source,
            })
        };
        let xsks = map("xsks")?;
        let counters = map("counters")?;
        Ok(Steering {
            attached: OnceLock::new(),
            xsks,
            counters,
            _object: object,
            iface: name,
            ifindex,
            prog_id,
            requested: mode,
            existing,
        })
    }

    /// Attaches the loaded program (detaching what `force` replaces first).
    /// Once: a second call does nothing.
    pub fn attach_loaded(&self) -> Result<()> {
        if self.attached.get().is_some() {
            return Ok(());
        }
        let (name, ifindex) = (&self.iface, self.ifindex);
        let prog = self
            ._object
            .progs()
            .find(|p| p.name() == "steer")
            .expect("the object defines the `steer` program");
        let prog_fd = prog.as_fd();
        let replaced = match self.existing {
            // another program may have replaced it since: detach what is there
            Some(_) => match query(ifindex, name)? {
                Some(e) => Some(remove(name, ifindex, e)?),
                None => None,
            },
            None => None,
        };

        let attach = |m: AttachedMode| {
            sys::xdp_link_create(prog_fd, ifindex, m.flags()).map_err(|source| Error::Syscall {
                iface: name.clone(),
                call: match m {
                    AttachedMode::Native => "bpf_link_create(BPF_XDP, native)",
                    AttachedMode::Generic => "bpf_link_create(BPF_XDP, generic)",
                },
                hint: hint_for(source.raw_os_error(), m),
                source,
            })
        };
        let (link, mode, native_error) = match self.requested {
            XdpMode::Native => (attach(AttachedMode::Native)?, AttachedMode::Native, None),
            XdpMode::Generic => (attach(AttachedMode::Generic)?, AttachedMode::Generic, None),
            XdpMode::Auto => match attach(AttachedMode::Native) {
                Ok(link) => (link, AttachedMode::Native, None),
                // Busy is not the driver's fault: generic would be busy too.
                Err(Error::Syscall { source, .. })
                    if !matches!(source.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) =>
                {
                    (
                        attach(AttachedMode::Generic)?,
                        AttachedMode::Generic,
                        Some(source),
                    )
                }
                Err(e) => return Err(e),
            },
        };

        let _ = self.attached.set(Attached {
            link,
            mode,
            replaced,
            native_error,
        });
        Ok(())
    }

    fn attached(&self) -> Option<&Attached> {
        self.attached.get()
    }

    /// The interface's name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface's index (in the namespace it was attached in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode that took (with [`XdpMode::Auto`], native unless the
    /// driver refused); `None` until attached.
    pub fn mode(&self) -> Option<AttachedMode> {
        self.attached().map(|a| a.mode)
    }

    /// Why native mode was refused, when [`XdpMode::Auto`] fell back to generic.
    pub fn native_error(&self) -> Option<&io::Error> {
        self.attached()?.native_error.as_ref()
    }

    /// The program's id (`bpftool prog show id N`, `ip link show`).
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// What `force` removed to make room, if anything.
    pub fn replaced(&self) -> Option<Replaced> {
        self.attached()?.replaced
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let read = |key: u32| -> Result<u64> {
            let per_cpu = self
                .counters
                .lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| self.map_error("lookup_percpu", "counters", source))?;
            Ok(per_cpu
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
                .fold(0u64, u64::wrapping_add))
        };
        Ok(Counters {
            steered: read(COUNTER_STEERED)?,
            passed: read(COUNTER_PASSED)?,
            no_socket: read(COUNTER_NO_SOCKET)?,
        })
    }

    /// Steers queue `queue`'s frames to the AF_XDP socket `xsk` (bound to this
    /// interface and queue).
    pub fn insert_socket(&self, queue: u32, xsk: BorrowedFd<'_>) -> Result<()> {
        self.check_queue(queue)?;
        let fd = u32::try_from(xsk.as_raw_fd()).expect("file descriptors are non-negative");
        self.xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| self.map_error("update", "xsks", source))
    }

    /// Stops steering to queue `queue`'s socket: its frames go to the kernel.
    pub fn remove_socket(&self, queue: u32) -> Result<()> {
        self.check_queue(queue)?;
        self.xsks
            .delete(&queue.to_ne_bytes())
            .map_err(|source| self.map_error("delete", "xsks", source))
    }

    fn check_queue(&self, queue: u32) -> Result<()> {
        if queue < MAX_QUEUES {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "interface {}: queue {queue} out of range (the program steers queues 0..{MAX_QUEUES})",
                self.iface
            )))
        }
    }

    fn map_error(&self, call: &'static str, map: &'static str, source: libbpf_rs::Error) -> Error {
        Error::Map {
            iface: self.iface.clone(),
            call,
            map,
            source,
        }
    }
}

const LOAD_HINT: &str = "run as root (CAP_BPF, CAP_NET_ADMIN) on a kernel with XDP; \
                         the log below says what libbpf or the verifier refused";

/// Opens the embedded object, writes the configuration into its `.rodata`
/// and loads it, capturing libbpf's and the verifier's messages.
fn load(object: &[u8], config: &[u8], frags: bool) -> Result<Object> {
    let (open, log) = log::capture(|| ObjectBuilder::default().open_memory(object));
    let mut open = open.map_err(|source| Error::Load {
        call: "bpf_object__open_mem",
        hint: "the embedded object is not a BPF object libbpf can read: rebuild the crate",
        source,
        verifier_log: log,
    })?;
    let mut rodata = open
        .maps_mut()
        .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
        .expect("the object has .rodata (the `cfg` constant)");
    let init = rodata
        .initial_value_mut()
        .expect(".rodata has an initial value");
    if init.len() != config.len() {
        return Err(Error::Config(format!(
            "the program's .rodata is {} bytes, the configuration {}: rebuild the crate",
            init.len(),
            config.len()
        )));
    }
    init.copy_from_slice(config);
    if frags {
        let mut prog = open
            .progs_mut()
            .find(|p| p.name() == "steer")
            .expect("the object defines the `steer` program");
        // a plain `xdp` section has no other flags
        prog.set_flags(libbpf_sys::BPF_F_XDP_HAS_FRAGS);
    }
    let (loaded, log) = log::capture(|| open.load());
    loaded.map_err(|source| Error::Load {
        call: "bpf_object__load",
        hint: LOAD_HINT,
        source,
        verifier_log: log,
    })
}

/// Detaches the program `e` found on the interface, for `force`.
fn remove(iface: &str, ifindex: u32, e: Existing) -> Result<Replaced> {
    let fail = |call, source: io::Error| Error::Syscall {
        iface: iface.to_owned(),
        call,
        source,
        hint: "the old program could not be removed: see `ip link show` and `bpftool link`",
    };
    if let Some(link_id) = e.link_id {
        let link = sys::link_fd_by_id(link_id).map_err(|s| fail("bpf_link_get_fd_by_id", s))?;
        sys::link_detach(link.as_fd()).map_err(|s| fail("bpf_link_detach", s))?;
        return Ok(Replaced::DetachedLink {
            prog_id: e.prog_id,
            link_id,
        });
    }
    let flags = match e.mode {
        "native" => libbpf_sys::XDP_FLAGS_DRV_MODE,
        "generic" => libbpf_sys::XDP_FLAGS_SKB_MODE,
        _ => libbpf_sys::XDP_FLAGS_HW_MODE,
    };
    let prog = sys::prog_fd_by_id(e.prog_id).map_err(|s| fail("bpf_prog_get_fd_by_id", s))?;
    sys::xdp_detach_expected(ifindex, flags, prog.as_fd())
        .map_err(|s| fail("bpf_xdp_detach", s))?;
    Ok(Replaced::DetachedNetlink { prog_id: e.prog_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A load error carries what libbpf said while it failed.
    #[test]
    fn load_error_carries_libbpf_log() {
        let err = load(b"not an ELF object", &[0; 48], false).expect_err("garbage does not load");
        let Error::Load {
            call, verifier_log, ..
        } = &err
        else {
            panic!("expected a load error, got {err}");
        };
        eprintln!("{err}");
        assert_eq!(*call, "bpf_object__open_mem");
        assert!(verifier_log.contains("elf"), "log: {verifier_log:?}");
        assert!(err.to_string().contains(verifier_log.trim_end()), "{err}");
    }
}
