import { useEffect, useState, type FormEvent } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { api, ApiError } from "../../api/client";
import { enrolAtSignIn, startSso, useSession, type MfaChallenge, type MfaEnrolment } from "../../auth/session";
import type { components } from "../../api/schema";
import { MfaEnrolmentPanel } from "./MfaEnrolmentPanel";

type Provider = components["schemas"]["IdentityProviderRead"];

const END_MESSAGES: Record<string, string> = {
  expired: "Your session has expired. Sign in again to continue.",
  signed_out: "You have signed out.",
};

/** A refused sign-in as a person reads it (the API's message when there is nothing better to say). */
export function explain(error: ApiError): string {
  switch (error.code) {
    case "invalid_credentials":
      return "Wrong user name or password.";
    case "account_locked":
      return "This account is locked after repeated failed sign-ins. Wait a few minutes or ask your administrator.";
    case "account_disabled":
      return "This account is disabled. Ask your administrator.";
    case "too_many_attempts":
      return "Too many attempts. Wait a moment before trying again.";
    case "company_inactive":
      return "Your company's access is inactive. Contact your service provider.";
    case "no_company_mapping":
      return "Your directory account is not assigned to a company yet. Contact your administrator.";
    case "invalid_mfa_code":
      return "That code is not valid (wrong, already used or expired). Enter the current code.";
    case "invalid_challenge":
    case "invalid_state":
      return "This sign-in took too long or was already used. Start again.";
    case "identity_provider_unavailable":
      return "The identity provider cannot be reached. Try again later or sign in with your password.";
    default:
      return error.message;
  }
}

function asError(exc: unknown): ApiError {
  return exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null);
}

export function SignInError({ error }: { error: ApiError }) {
  return (
    <div className="state error" role="alert">
      <p className="error-message">{explain(error)}</p>
      {error.requestId ? (
        <p className="muted">
          request id <code className="request-id">{error.requestId}</code>
        </p>
      ) : null}
    </div>
  );
}

export default function SignIn() {
  const session = useSession();
  const location = useLocation();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [challenge, setChallenge] = useState<MfaChallenge | null>(null);
  const [enrolment, setEnrolment] = useState<MfaEnrolment | null>(null);
  const [code, setCode] = useState("");
  const [providers, setProviders] = useState<Provider[]>([]);
  const from = (location.state as { from?: string } | null)?.from ?? "/";

  useEffect(() => {
    // SSO buttons when identity providers are configured; without, the form alone.
    api
      .GET("/auth/oidc/providers/")
      .then((answer) => setProviders(answer.data?.items ?? []))
      .catch(() => undefined);
  }, []);

  if (session.user) return <Navigate to={from} replace />;

  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (exc) {
      const refused = asError(exc);
      setError(refused);
      if (refused.code === "invalid_challenge") {
        setChallenge(null); // spent or expired: back to the password
        setEnrolment(null);
        setCode("");
      }
    } finally {
      setBusy(false);
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void run(async () => {
      if (challenge) {
        await session.verifyMfa(challenge.challenge, code.trim());
        return;
      }
      const next = await session.signIn(username.trim(), password);
      if (next?.purpose === "enrol") setEnrolment(await enrolAtSignIn(next.challenge));
      setChallenge(next);
    });
  };

  return (
    <main className="signin" id="main">
      <form className="card signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to the SOC Portal</h1>
        {session.endReason && END_MESSAGES[session.endReason] ? (
          <p className="notice" role="status">
            {END_MESSAGES[session.endReason]}
          </p>
        ) : null}
        {challenge ? (
          <>
            {challenge.purpose === "enrol" ? (
              <>
                <p className="notice" role="status">
                  Your account must use two-factor authentication. Set up your authenticator app now.
                </p>
                {enrolment ? <MfaEnrolmentPanel enrolment={enrolment} /> : null}
              </>
            ) : (
              <p className="muted">Your account uses two-factor authentication.</p>
            )}
            <label>
              Authentication code
              <input name="code" inputMode="numeric" autoComplete="one-time-code" required minLength={6} maxLength={32} value={code} onChange={(e) => setCode(e.target.value)} autoFocus />
              <span className="muted">The 6-digit code of your authenticator app{challenge.purpose === "verify" ? ", or a recovery code" : ""}.</span>
            </label>
          </>
        ) : (
          <>
            <p className="muted">Use your portal account or your directory (Active Directory / LDAP) account.</p>
            <label>
              User name or e-mail
              <input name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} autoFocus />
            </label>
            <label>
              Password
              <input name="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
            </label>
          </>
        )}
        {error ? <SignInError error={error} /> : null}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : challenge ? "Verify" : "Sign in"}
        </button>
        {!challenge && providers.length ? (
          <div className="sso" role="group" aria-label="Single sign-on">
            <p className="muted">or</p>
            {providers.map((p) => (
              <button key={p.name} type="button" disabled={busy} onClick={() => void run(() => startSso(p.name, from))}>
                Sign in with {p.display_name}
              </button>
            ))}
          </div>
        ) : null}
      </form>
    </main>
  );
}
