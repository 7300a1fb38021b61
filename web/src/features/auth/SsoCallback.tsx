import { useEffect, useRef, useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { ApiError } from "../../api/client";
import { useSession } from "../../auth/session";
import { Loading } from "../../components/States";
import { SignInError } from "./SignIn";

/** Where the identity provider sends the browser back: the code and state become the portal's tokens. */
export default function SsoCallback() {
  const session = useSession();
  const navigate = useNavigate();
  const [error, setError] = useState<ApiError | null>(null);
  const started = useRef(false);

  useEffect(() => {
    if (started.current) return; // the state is single-use: exchanged once, whatever renders twice
    started.current = true;
    const query = new URLSearchParams(window.location.search);
    session
      .completeSso(query)
      .then((to) => navigate(to, { replace: true }))
      .catch((exc: unknown) => setError(exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null)));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return (
    <main className="signin" id="main">
      <div className="card signin-card">
        <h1>Single sign-on</h1>
        {error ? (
          <>
            <SignInError error={error} />
            <p>
              <Link to="/sign-in">Back to sign-in</Link>
            </p>
          </>
        ) : (
          <Loading label="Signing you in…" />
        )}
      </div>
    </main>
  );
}
