import { useState, type FormEvent } from "react";
import { api, ApiError, unwrap } from "../../api/client";
import { useSession, type MfaEnrolment } from "../../auth/session";
import { formatDate } from "../../components/format";
import { ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { MfaEnrolmentPanel } from "../auth/MfaEnrolmentPanel";

function asError(exc: unknown): ApiError {
  return exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null);
}

function useRunner() {
  const [error, setError] = useState<ApiError | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (work: () => Promise<string | void>) => {
    setBusy(true);
    setError(null);
    setMessage(null);
    try {
      const text = await work();
      if (text) setMessage(text);
    } catch (exc) {
      setError(asError(exc));
    } finally {
      setBusy(false);
    }
  };
  const outcome = (
    <>
      {error ? <ErrorBox error={error} /> : null}
      {message ? (
        <p className="notice" role="status">
          {message}
        </p>
      ) : null}
    </>
  );
  return { run, busy, outcome };
}

function TwoFactor() {
  const status = useAsync(() => unwrap(api.GET("/auth/mfa/")), []);
  const action = useRunner();
  const [enrolment, setEnrolment] = useState<MfaEnrolment | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [code, setCode] = useState("");
  const mfa = status.data;

  const withCode = (event: FormEvent, work: (code: string) => Promise<string>) => {
    event.preventDefault();
    void action.run(async () => {
      const text = await work(code.trim());
      setCode("");
      status.reload();
      return text;
    });
  };

  const codeInput = (
    <label>
      Authentication code
      <input name="code" inputMode="numeric" autoComplete="one-time-code" required minLength={6} maxLength={32} value={code} onChange={(e) => setCode(e.target.value)} />
    </label>
  );

  return (
    <section className="card" aria-labelledby="mfa-title">
      <h2 id="mfa-title">Two-factor authentication</h2>
      {status.error ? <ErrorBox error={status.error} onRetry={status.reload} /> : null}
      {!mfa ? <Loading /> : null}
      {action.outcome}
      {mfa && !mfa.enabled ? (
        <>
          <p data-testid="mfa-state">{mfa.required ? "Required for your account and not set up yet." : "Off."}</p>
          {enrolment ? (
            <form className="stack" onSubmit={(e) => withCode(e, (c) => unwrap(api.POST("/auth/mfa/confirm/", { body: { code: c } })).then(() => { setEnrolment(null); return "Two-factor authentication is on."; }))}>
              <MfaEnrolmentPanel enrolment={enrolment} />
              {codeInput}
              <button type="submit" className="primary" disabled={action.busy}>
                Turn on
              </button>
            </form>
          ) : (
            <button type="button" className="primary" disabled={action.busy} onClick={() => void action.run(async () => setEnrolment(await unwrap(api.POST("/auth/mfa/enrol/"))))}>
              Set up an authenticator app
            </button>
          )}
        </>
      ) : null}
      {mfa?.enabled ? (
        <>
          <p data-testid="mfa-state">
            On since {formatDate(mfa.confirmed_at)} · {mfa.recovery_codes_left} recovery codes left
          </p>
          {codes ? (
            <ul className="codes" aria-label="New recovery codes">
              {codes.map((c) => (
                <li key={c}>
                  <code>{c}</code>
                </li>
              ))}
            </ul>
          ) : null}
          <form className="stack" onSubmit={(e) => e.preventDefault()}>
            {codeInput}
            <div className="page-actions">
              <button type="submit" disabled={action.busy} onClick={(e) => withCode(e, (c) => unwrap(api.POST("/auth/mfa/recovery-codes/", { body: { code: c } })).then((fresh) => { setCodes(fresh); return "New recovery codes: the old ones no longer work."; }))}>
                New recovery codes
              </button>
              {mfa.required ? null : (
                <button type="submit" className="danger" disabled={action.busy} onClick={(e) => withCode(e, (c) => unwrap(api.POST("/auth/mfa/disable/", { body: { code: c } })).then(() => "Two-factor authentication is off."))}>
                  Turn off
                </button>
              )}
            </div>
          </form>
        </>
      ) : null}
    </section>
  );
}

function ChangePassword() {
  const action = useRunner();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void action.run(async () => {
      if (next !== again) throw new ApiError(0, "mismatch", "The new passwords differ.", null);
      await unwrap(api.POST("/auth/change-password/", { body: { current_password: current, new_password: next } }));
      setCurrent("");
      setNext("");
      setAgain("");
      return "Your password is changed.";
    });
  };
  return (
    <form className="card stack" onSubmit={submit} aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      {action.outcome}
      <label>
        Current password
        <input type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />
      </label>
      <label>
        New password
        <input type="password" autoComplete="new-password" required minLength={8} value={next} onChange={(e) => setNext(e.target.value)} />
      </label>
      <label>
        New password again
        <input type="password" autoComplete="new-password" required minLength={8} value={again} onChange={(e) => setAgain(e.target.value)} />
      </label>
      <button type="submit" disabled={action.busy}>
        Change password
      </button>
    </form>
  );
}

/** Where this person is signed in (browsers and devices): end one, or all (this one included). */
function Sessions() {
  const { signOut } = useSession();
  const sessions = useAsync(() => unwrap(api.GET("/auth/sessions/")), []);
  const action = useRunner();
  return (
    <section className="card" aria-labelledby="sessions-title">
      <h2 id="sessions-title">Where you are signed in</h2>
      {action.outcome}
      {sessions.error ? <ErrorBox error={sessions.error} onRetry={sessions.reload} /> : null}
      {sessions.loading && !sessions.data ? <Loading label="Loading your sessions…" /> : null}
      {sessions.data ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Your sessions">
          <table data-testid="my-sessions">
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">From</th>
                <th scope="col">Last used</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {sessions.data.items.map((s) => (
                <tr key={s.id}>
                  <td>
                    {s.device}
                    {s.current ? <span className="tag">this browser</span> : null}
                  </td>
                  <td>{s.client_ip ?? "—"}</td>
                  <td>{formatDate(s.last_used_at)}</td>
                  <td>
                    {s.current ? null : (
                      <button
                        type="button"
                        disabled={action.busy}
                        onClick={() =>
                          void action.run(async () => {
                            await unwrap(api.DELETE("/auth/sessions/{session_id}/", { params: { path: { session_id: s.id } } }));
                            sessions.reload();
                            return "That session has ended.";
                          })
                        }
                      >
                        End session<span className="skip-link"> on {s.device}</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <p>
        <button
          type="button"
          className="danger"
          disabled={action.busy}
          onClick={() =>
            void action.run(async () => {
              await unwrap(api.DELETE("/auth/sessions/"));
              await signOut();
            })
          }
        >
          End every session
        </button>
      </p>
    </section>
  );
}

export default function Account() {
  const { user } = useSession();
  const local = (user?.auth_source ?? "local") === "local";
  return (
    <>
      <PageHeader title="Your account" />
      <p className="muted">
        {user?.username} · {user?.email ?? "no e-mail"} · {user?.auth_source ?? "local"} account
      </p>
      <div className="grid-2">
        <TwoFactor />
        {local ? <ChangePassword /> : null}
        <Sessions />
      </div>
    </>
  );
}
