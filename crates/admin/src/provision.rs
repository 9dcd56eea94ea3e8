//! Creating tenants, users and tasks: the verbs the CLI, the demo and the
//! tests share (the full admin API is built on these).

use crate::state::model::*;
use crate::state::Db;

/// How a new tenant is set up; `Default` is UTC and HS256.
#[derive(Debug, Clone, Default)]
pub struct TenantOptions {
    /// IANA zone for quota resets; `None` is UTC.
    pub timezone: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    /// Its plan's subscription (a trial when the plan has one); `None`:
    /// no plan limits it.
    pub subscription: Option<crate::domain::plans::Subscription>,
}

pub fn create_tenant(
    db: &Db,
    id: &str,
    name: &str,
    options: TenantOptions,
) -> anyhow::Result<Tenant> {
    validate_id("tenant", id)?;
    let timezone = options.timezone.unwrap_or_else(|| "UTC".into());
    crate::calendar::Calendar::parse(&timezone)?;
    if db
        .directory()
        .tenant(id)
        .and_then(|t| t.tenant.as_ref())
        .is_some()
    {
        anyhow::bail!("tenant '{id}' already exists");
    }
    let tenant = Tenant {
        id: id.into(),
        name: name.into(),
        status: TenantStatus::Active,
        created_at: crate::clock::now_secs(),
        timezone,
        misuse: Default::default(),
        subscription: options.subscription,
        branding: Default::default(),
    };
    db.put_tenant(&tenant)?;
    db.put_key(&crate::token::new_signing_key(id, 1, options.key_algorithm))?;
    Ok(tenant)
}

/// Adds a new signing key for the tenant; new tokens are signed with it, and
/// tokens signed with older keys stay valid until they expire. The algorithm
/// defaults to the current key's.
pub fn rotate_key(
    db: &Db,
    tenant_id: &str,
    algorithm: Option<KeyAlgorithm>,
) -> anyhow::Result<SigningKey> {
    let directory = db.directory();
    let newest = directory
        .keys
        .values()
        .map(|k| &k.record)
        .filter(|k| k.tenant_id == tenant_id)
        .max_by_key(|k| k.generation)
        .ok_or_else(|| anyhow::anyhow!("no tenant '{tenant_id}'"))?;
    let key = crate::token::new_signing_key(
        tenant_id,
        newest.generation + 1,
        algorithm.unwrap_or(newest.algorithm),
    );
    db.put_key(&key)?;
    Ok(key)
}

pub struct NewUser<'a> {
    pub tenant_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub limits: Limits,
    /// Groups of the tenant the user joins (each must exist).
    pub groups: Vec<String>,
}

pub fn create_user(db: &Db, new: NewUser<'_>) -> anyhow::Result<User> {
    validate_id("user", new.id)?;
    let directory = db.directory();
    let tenant = directory
        .tenant(new.tenant_id)
        .filter(|t| t.tenant.is_some())
        .ok_or_else(|| anyhow::anyhow!("no tenant '{}'", new.tenant_id))?;
    if let Some(missing) = new.groups.iter().find(|g| !tenant.groups.contains_key(*g)) {
        anyhow::bail!("no group '{missing}' in tenant '{}'", new.tenant_id);
    }
    if tenant.users.contains_key(new.id) {
        anyhow::bail!(
            "user '{}' already exists in tenant '{}'",
            new.id,
            new.tenant_id
        );
    }
    let user = User {
        tenant_id: new.tenant_id.into(),
        id: new.id.into(),
        name: new.name.into(),
        role: new.role,
        status: UserStatus::Active,
        limits: new.limits,
        created_at: crate::clock::now_secs(),
        groups: new.groups,
    };
    db.put_user(&user)?;
    Ok(user)
}

pub fn create_task(db: &Db, task: Task) -> anyhow::Result<Task> {
    validate_id("task", &task.id)?;
    if db
        .directory()
        .tenant(&task.tenant_id)
        .and_then(|t| t.tenant.as_ref())
        .is_none()
    {
        anyhow::bail!("no tenant '{}'", task.tenant_id);
    }
    db.put_task(&task)?;
    Ok(task)
}

/// Ids appear in keys, file names and headers: keep them plain (no ':',
/// which keeps users apart from quota pools, see `warden_domain::groups`).
pub fn validate_id(kind: &str, id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        anyhow::bail!("invalid {kind} id '{id}': use 1-64 letters, digits, '-', '_' or '.'");
    }
    Ok(())
}
