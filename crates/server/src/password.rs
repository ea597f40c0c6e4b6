//! Password hashing: Argon2id with the argon2 crate's defaults (the OWASP parameters),
//! always off the async runtime on a fixed pool of dedicated threads behind a semaphore,
//! so a login storm cannot starve other requests. Unknown users are checked against a
//! dummy hash so they cost the same time as a wrong password.
//!
//! Why dedicated threads rather than `spawn_blocking`: each Argon2id run allocates 19 MiB,
//! and the allocator keeps freed memory in the arena of the thread that used it. Tokio's
//! blocking pool spreads jobs over many threads, so a login storm left hundreds of MiB
//! resident; a fixed pool of `concurrency` threads reuses the same memory.
//!
//! The hashing threads run at the lowest scheduling priority ([`HashPriority`]): a hash
//! takes 15 to 30 ms of one core, and a request thread that wakes while one runs must not
//! wait for the scheduler to end the hash's time slice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use std::cell::RefCell;

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version,
};
use tessera_token::SecretString;
use tessera_token::UnixTime;
use tokio::sync::Semaphore;

use crate::Error;

mod places;

use places::Places;
pub use places::{Admission, Source};

/// Shortest password accepted by `tessera user add` / `user passwd`.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bytes); longer input is refused before hashing.
pub const MAX_PASSWORD_LEN: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

pub use crate::config::{DEFAULT_HASH_QUEUE, HashPriority};

/// The bounded Argon2id pool.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    concurrency: usize,
    /// Verifications running or waiting: `concurrency` + the queue bound, shared out
    /// between sources, plus a reserve for known ones. A login that finds no place is
    /// refused at once rather than queued ([`Passwords::admit_from`]).
    places: Arc<Places>,
    jobs: SyncSender<Job>,
    dummy: Arc<str>,
    /// Verifications whose hash started (for tests and diagnostics).
    started: Arc<AtomicU64>,
}

impl Passwords {
    /// A pool of `concurrency` hashing threads scheduled as `priority`. Computes the
    /// dummy hash (one Argon2id run), so call it once at start-up.
    pub async fn new(concurrency: usize, priority: HashPriority) -> Result<Self, Error> {
        let concurrency = concurrency.max(1);
        let (jobs, queue) = sync_channel::<Job>(concurrency);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..concurrency {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&queue, priority))
                .map_err(|e| Error::Internal(format!("cannot start password thread: {e}")))?;
        }
        let mut pool = Passwords {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            places: Places::new(concurrency + DEFAULT_HASH_QUEUE),
            jobs,
            dummy: Arc::from(""),
            started: Arc::new(AtomicU64::new(0)),
        };
        pool.dummy = pool
            .run(|| hash_now("tessera dummy password for timing"))
            .await??
            .into();
        Ok(pool)
    }

    /// Lets at most `queue` verifications wait for a hashing thread (beyond those
    /// running); past that, [`Passwords::admit`] refuses.
    #[must_use]
    pub fn with_queue(mut self, queue: usize) -> Self {
        self.places = Places::new(self.concurrency + queue);
        self
    }

    /// A place to verify a password now or after the few already waiting, for a check of
    /// no known source, or `None` when the queue is full.
    pub fn admit(&self) -> Option<Admission> {
        self.admit_from(&Source::default(), UnixTime::from_secs(0))
    }

    /// A place to verify a password from `source` now or after the few already waiting,
    /// or `None` when the queue has no place this source may take (answer "busy, retry
    /// later" instead of waiting): see the `places` module.
    pub fn admit_from(&self, source: &Source, now: UnixTime) -> Option<Admission> {
        self.places.admit(source, now)
    }

    /// Remembers that an (account, network) pair signed in successfully at `now`: for a
    /// while it may take a place from the reserve.
    pub fn remember(&self, account: &str, network: &str, now: UnixTime) {
        self.places.remember(account, network, now);
    }

    /// True when `source`'s account signed in successfully from its network lately.
    pub fn is_known(&self, source: &Source, now: UnixTime) -> bool {
        self.places.is_known(source, now)
    }

    /// How many verifications have started hashing so far.
    pub fn checks_started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        check_policy(password.expose())?;
        self.run(move || hash_now(password.expose())).await?
    }

    /// True when `password` matches `phc`; with no hash (unknown user) checks against the
    /// dummy and returns false, taking the same time. The admission is given back when the
    /// check ends (or the caller stops waiting).
    pub async fn verify(
        &self,
        admission: Admission,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<bool, Error> {
        let checked = self.verify_if(admission, password, phc, || true).await?;
        Ok(checked == Some(true))
    }

    /// As [`verify`](Self::verify), but when its hashing thread takes the job up and
    /// `wanted()` is false (the client went away while it waited) the hash is skipped
    /// and the answer is `None`: the check never ran.
    pub async fn verify_if(
        &self,
        admission: Admission,
        password: SecretString,
        phc: Option<String>,
        wanted: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<Option<bool>, Error> {
        if password.expose().len() > MAX_PASSWORD_LEN {
            return Ok(Some(false));
        }
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.to_string());
        let started = Arc::clone(&self.started);
        // The admission goes with the job: a check its caller abandoned keeps its place
        // until its thread is done with it.
        let ok = self
            .run(move || {
                let _admission = admission;
                if !wanted() {
                    return None;
                }
                started.fetch_add(1, Ordering::SeqCst);
                Some(verify_now(password.expose().as_bytes(), &phc))
            })
            .await?;
        Ok(ok.map(|ok| ok && known))
    }

    /// Runs `f` on a hashing thread once one of the `concurrency` permits is free. The
    /// permit travels with the job and is freed when the job ends, even if the caller
    /// stopped waiting (a client gone mid-login), so the queue never holds more jobs than
    /// there are threads and `send` never blocks the runtime; a job nobody waits for any
    /// more is skipped.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let closed = || Error::Internal("password pool closed".into());
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _permit = permit;
                if !tx.is_closed() {
                    let _ = tx.send(f());
                }
            }))
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }
}

/// The nice value of the hashing threads under [`HashPriority::Nice`] (and where
/// `SCHED_IDLE` is refused): about a tenth of a core the runtime's threads also want.
pub const HASHER_NICE: i32 = 10;

/// Gives the calling thread `priority`; a failure is logged and leaves what could be set.
fn lower_priority(priority: HashPriority) {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        if priority == HashPriority::Idle {
            let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
            match set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    error = ?e,
                    "cannot schedule the password hashing thread as SCHED_IDLE; using nice {HASHER_NICE}"
                ),
            }
        }
        // On Linux, setpriority(PRIO_PROCESS, tid) applies to that one thread.
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), HASHER_NICE) {
            tracing::warn!(error = %e, "cannot lower the password hashing thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// A hashing thread: runs jobs until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>, priority: HashPriority) {
    lower_priority(priority);
    loop {
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Refuses passwords that are too short or too long.
pub fn check_policy(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "password must be at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// Hashes one new password off the async runtime, without a pool (operator commands).
pub async fn hash_one(password: SecretString) -> Result<String, Error> {
    check_policy(password.expose())?;
    run_blocking(move || hash_now(password.expose())).await?
}

thread_local! {
    /// This hashing thread's Argon2 memory (19 MiB with the default parameters), kept
    /// between verifications so it is allocated once per thread, not once per login.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Verifies `password` against an Argon2id PHC string, computing in this thread's
/// reusable memory; the comparison is constant-time. Any malformed or non-Argon2id hash
/// is a mismatch.
fn verify_now(password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    if hash.algorithm != ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let computed = MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt.as_ref(), out, &mut memory[..blocks])
            .is_ok()
    });
    computed && aws_lc_rs::constant_time::verify_slices_are_equal(out, expected.as_bytes()).is_ok()
}

fn hash_now(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Internal("password hashing task failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_and_dummy() {
        let p = Passwords::new(2, HashPriority::Idle).await.unwrap();
        let h = p.hash(SecretString::new("correct horse")).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            p.verify(
                p.admit().unwrap(),
                SecretString::new("correct horse"),
                Some(h.clone())
            )
            .await
            .unwrap()
        );
        assert!(
            !p.verify(
                p.admit().unwrap(),
                SecretString::new("wrong horse!"),
                Some(h)
            )
            .await
            .unwrap()
        );
        assert!(
            !p.verify(
                p.admit().unwrap(),
                SecretString::new("tessera dummy password for timing"),
                None
            )
            .await
            .unwrap()
        );
        assert!(p.hash(SecretString::new("short")).await.is_err());
    }

    /// Past `concurrency` + `queue` admissions the pool refuses at once; a place comes
    /// back when its holder is done.
    #[tokio::test]
    async fn admissions_are_bounded_by_threads_plus_queue() {
        let p = Passwords::new(1, HashPriority::Idle)
            .await
            .unwrap()
            .with_queue(2);
        let held: Vec<Admission> = (0..3).map(|_| p.admit().unwrap()).collect();
        assert!(p.admit().is_none(), "one running and two waiting: full");
        drop(held);
        let again = p.admit().unwrap();
        assert!(
            !p.verify(again, SecretString::new("whatever1"), None)
                .await
                .unwrap()
        );
        let all: Vec<Admission> = (0..3).map(|_| p.admit().unwrap()).collect();
        assert_eq!(all.len(), 3, "the verification gave its place back");
    }

    /// A caller that stops waiting (a client gone mid-login) neither frees its thread's
    /// place while the hash still runs nor makes a later check fail: the permit and the
    /// admission live in the job until it ends, and an abandoned job is skipped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_checks_keep_their_place_and_break_nothing() {
        let p = Passwords::new(1, HashPriority::Idle)
            .await
            .unwrap()
            .with_queue(100);
        for round in 0..20 {
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let (p2, a) = (p.clone(), p.admit().unwrap());
                tasks.push(tokio::spawn(async move {
                    p2.verify(a, SecretString::new("whatever1"), None).await
                }));
            }
            tokio::task::yield_now().await;
            for t in &tasks {
                t.abort();
            }
            let a = p.admit().unwrap();
            let r = p.verify(a, SecretString::new("whatever1"), None).await;
            assert!(matches!(r, Ok(false)), "round {round}: {r:?}");
        }
    }

    /// The hashing threads run under the policy asked for (Linux: field 41 of
    /// `/proc/thread-self/stat`, 5 = SCHED_IDLE, 0 = SCHED_OTHER; field 19, the nice value).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_get_the_scheduling_policy_asked_for() {
        fn policy_and_nice() -> (String, String) {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let f: Vec<String> = stat[stat.rfind(')').unwrap() + 2..]
                .split(' ')
                .map(str::to_owned)
                .collect();
            // Fields after the command name start at field 3.
            (f[41 - 3].clone(), f[19 - 3].clone())
        }
        let idle = Passwords::new(1, HashPriority::Idle).await.unwrap();
        assert_eq!(idle.run(policy_and_nice).await.unwrap().0, "5");
        let nice = Passwords::new(1, HashPriority::Nice).await.unwrap();
        assert_eq!(
            nice.run(policy_and_nice).await.unwrap(),
            ("0".to_owned(), HASHER_NICE.to_string())
        );
        assert_eq!(
            policy_and_nice().0,
            "0",
            "the caller's thread is not changed"
        );
    }

    /// The reusable-memory verifier agrees with the argon2 crate's own verifier, including
    /// for hashes with other parameters (the memory is grown as needed) and refuses other
    /// algorithms and malformed strings.
    #[test]
    fn verify_now_agrees_with_the_library() {
        use argon2::PasswordVerifier;
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, Some(32)).unwrap(),
        );
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default());
        let cases = [
            hash_now("correct horse").unwrap(),
            small.hash_password(b"correct horse").unwrap().to_string(),
            hash_now("correct horse").unwrap(),
        ];
        for phc in &cases {
            for pw in ["correct horse", "correct horsE", ""] {
                let library = Argon2::default()
                    .verify_password(pw.as_bytes(), phc.as_str())
                    .is_ok();
                assert_eq!(verify_now(pw.as_bytes(), phc), library, "{pw:?} {phc}");
            }
        }
        let other = argon2i.hash_password(b"correct horse").unwrap().to_string();
        assert!(!verify_now(b"correct horse", &other));
        for bad in [
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "not a hash",
            "$argon2id$v=99$m=8,t=1,p=1$c2FsdHNhbHQ$AAAA",
        ] {
            assert!(!verify_now(b"correct horse", bad), "{bad}");
        }
    }
}
