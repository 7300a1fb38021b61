import { useState, type FormEvent } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { ApiError } from "../../api/client";
import { useSession, type MfaChallenge } from "../../auth/session";

const END_MESSAGES: Record<string, string> = {
  expired: "Your session has expired. Sign in again to continue.",
  signed_out: "You have signed out.",
};

function explain(error: ApiError): string {
  switch (error.code) {
    case "invalid_credentials":
      return "Wrong user name or password.";
    case "account_locked":
      return "This account is locked after repeated failed sign-ins. Wait a few minutes or ask your administrator.";
    case "too_many_attempts":
      return "Too many attempts. Wait a moment before trying again.";
    case "company_inactive":
      return "Your company's access is inactive. Contact your service provider.";
    case "no_company_mapping":
      return "Your directory account is not assigned to a company yet. Contact your administrator.";
    default:
      return error.message;
  }
}

export default function SignIn() {
  const session = useSession();
  const location = useLocation();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [challenge, setChallenge] = useState<MfaChallenge | null>(null);
  const [code, setCode] = useState("");
  const from = (location.state as { from?: string } | null)?.from ?? "/";

  if (session.user) return <Navigate to={from} replace />;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (challenge) {
        await session.verifyMfa(challenge.challenge, code.trim());
      } else {
        setChallenge(await session.signIn(username.trim(), password));
      }
    } catch (exc) {
      setError(exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <form className="card signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to the SOC Portal</h1>
        <p className="muted">Use your portal account or your directory (Active Directory / LDAP) account.</p>
        {session.endReason && END_MESSAGES[session.endReason] ? (
          <p className="notice" role="status">
            {END_MESSAGES[session.endReason]}
          </p>
        ) : null}
        {challenge?.purpose === "verify" ? (
          <label>
            Authentication code
            <input name="code" inputMode="numeric" autoComplete="one-time-code" required minLength={6} maxLength={32} value={code} onChange={(e) => setCode(e.target.value)} autoFocus />
            <span className="muted">The 6-digit code of your authenticator app, or a recovery code.</span>
          </label>
        ) : challenge ? (
          <p className="notice" role="status">
            Your account must enrol in two-factor authentication before it can sign in. Ask your administrator to enrol it; enrolment is not
            available in the console yet.
          </p>
        ) : (
          <>
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
        {error ? (
          <div className="state error" role="alert">
            <p className="error-message">{explain(error)}</p>
            {error.requestId ? (
              <p className="muted">
                request id <code className="request-id">{error.requestId}</code>
              </p>
            ) : null}
          </div>
        ) : null}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : challenge ? "Verify" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
