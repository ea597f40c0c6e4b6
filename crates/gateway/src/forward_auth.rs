//! Forward-auth mode: answers the authorization sub-request of nginx `auth_request`,
//! Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP service) with 200 and identity headers,
//! or the guard's 401/403 and its challenge. (Being built: see issue 18, section 2.)
