//! Resolving a `--user` string (`name`, `uid`, `uid:gid`, `name:group`) against the image's
//! `/etc/passwd` and `/etc/group`, with runc's `user.GetExecUser` rules (which Docker uses):
//! a numeric uid needs no passwd entry (gid then 0); a name must exist; supplementary groups
//! come from `/etc/group` memberships only when no group was given.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The ids a container process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// Home directory from passwd (`/` when none), for `HOME` when the env has none.
    pub home: String,
}

/// Why a user string could not be resolved; the messages are Docker's.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A user name with no passwd entry (or no passwd file).
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name with no group entry.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    /// Reading the rootfs's files failed for another reason than absence.
    #[error("reading {path} in the image: {source}")]
    Read {
        /// The file inside the rootfs.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(s: &str) -> impl Iterator<Item = Passwd<'_>> {
    s.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(Passwd {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(s: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    s.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|x| !x.is_empty()).collect())
            .unwrap_or_default();
        Some((*f.first()?, f.get(2)?.parse().ok()?, members))
    })
}

/// Resolves `spec` against the text of `/etc/passwd` and `/etc/group` (`None`: file absent).
pub fn resolve_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // runc: an empty user is uid 0 (and picks up root's passwd entry when there is one).
    let user = if user.is_empty() { "0" } else { user };
    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".into(),
    };
    let numeric = user.parse::<u32>().ok();
    let entry =
        passwd.and_then(|p| passwd_entries(p).find(|e| e.name == user || Some(e.uid) == numeric));
    let mut matched_name = None;
    match (entry, numeric) {
        (Some(e), _) => {
            out.uid = e.uid;
            out.gid = e.gid;
            out.home = if e.home.is_empty() {
                "/".into()
            } else {
                e.home.into()
            };
            matched_name = Some(e.name.to_string());
        }
        (None, Some(uid)) => out.uid = uid,
        (None, None) => return Err(UserError::NoUser(user.into())),
    }
    match grp.filter(|g| !g.is_empty()) {
        Some(g) => {
            let found = group.and_then(|gf| {
                group_entries(gf).find(|(n, id, _)| *n == g || g.parse::<u32>().ok() == Some(*id))
            });
            out.gid = match (found, g.parse::<u32>()) {
                (Some((_, id, _)), _) => id,
                (None, Ok(id)) => id,
                (None, Err(_)) => return Err(UserError::NoGroup(g.into())),
            };
        }
        None => {
            if let (Some(name), Some(gf)) = (&matched_name, group) {
                out.additional_gids = group_entries(gf)
                    .filter(|(_, _, m)| m.contains(&name.as_str()))
                    .map(|(_, id, _)| id)
                    .collect();
            }
        }
    }
    Ok(out)
}

/// [`resolve_user`] with the files read from an unpacked rootfs. A file that is a symlink, or
/// sits under one, counts as absent: following it would read the host's file.
pub fn resolve_user_in_root(root: &Path, spec: &str) -> Result<ExecUser, UserError> {
    let passwd = read_in_root(root, "etc/passwd")?;
    let group = read_in_root(root, "etc/group")?;
    resolve_user(spec, passwd.as_deref(), group.as_deref())
}

fn read_in_root(root: &Path, rel: &str) -> Result<Option<String>, UserError> {
    let err = |source| UserError::Read {
        path: format!("/{rel}"),
        source,
    };
    if std::fs::symlink_metadata(root.join("etc"))
        .map(|m| !m.file_type().is_dir())
        .unwrap_or(true)
    {
        return Ok(None);
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(root.join(rel));
    let mut f = match f {
        Ok(f) => f,
        Err(e)
            if matches!(e.kind(), io::ErrorKind::NotFound)
                || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(err(e)),
    };
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(err)?;
    Ok(Some(s))
}
