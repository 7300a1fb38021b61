import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, ApiError, getTokens, onTokens, setTokens, toApiError, unwrap } from "../api/client";
import type { components } from "../api/schema";

export type User = components["schemas"]["UserRead"];
export type MfaChallenge = components["schemas"]["MfaChallengeResponse"];

export interface Session {
  user: User | null;
  loading: boolean;
  /** Why the last session ended, for the sign-in page ("expired", "signed_out"). */
  endReason: string | null;
  /** Signs in, or answers the second-factor challenge the account needs first. */
  signIn: (username: string, password: string) => Promise<MfaChallenge | null>;
  verifyMfa: (challenge: string, code: string) => Promise<void>;
  signOut: () => Promise<void>;
  can: (permission: string) => boolean;
  isAdmin: boolean;
  readOnly: boolean;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<User | null>(null);
  const [loading, setLoading] = useState(() => getTokens() !== null);
  const [endReason, setEndReason] = useState<string | null>(null);

  useEffect(() => {
    if (getTokens()) {
      unwrap(api.GET("/auth/me/"))
        .then(setUser)
        .catch(() => setTokens(null, "expired"))
        .finally(() => setLoading(false));
    }
    return onTokens((tokens, reason) => {
      if (!tokens) {
        setUser(null);
        setEndReason(reason ?? null);
      }
    });
  }, []);

  const signIn = useCallback(async (username: string, password: string) => {
    let result;
    try {
      result = await api.POST("/auth/login/", { body: { username, password } });
    } catch {
      throw new ApiError(0, "network_error", "The server cannot be reached. Check the connection and try again.", null);
    }
    if (!result.response.ok || !result.data) throw await toApiError(result.response, result.error);
    if (result.data.mfa_required) return result.data;
    setTokens(result.data);
    setEndReason(null);
    setUser(result.data.user);
    return null;
  }, []);

  const verifyMfa = useCallback(async (challenge: string, code: string) => {
    let result;
    try {
      result = await api.POST("/auth/mfa/verify/", { body: { challenge, code } });
    } catch {
      throw new ApiError(0, "network_error", "The server cannot be reached. Check the connection and try again.", null);
    }
    if (!result.response.ok || !result.data) throw await toApiError(result.response, result.error);
    setTokens(result.data);
    setEndReason(null);
    setUser(result.data.user);
  }, []);

  const signOut = useCallback(async () => {
    const tokens = getTokens();
    if (tokens) {
      // Revokes the refresh token's family; the session ends here whatever the answer.
      await api.POST("/auth/logout/", { body: { refresh_token: tokens.refresh_token, all_sessions: false } }).catch(() => undefined);
    }
    setTokens(null, "signed_out");
  }, []);

  const value = useMemo<Session>(() => {
    const permissions = new Set(user?.permissions ?? []);
    return {
      user,
      loading,
      endReason,
      signIn,
      verifyMfa,
      signOut,
      isAdmin: Boolean(user?.is_admin),
      readOnly: Boolean(user?.is_read_only),
      // Admins see every company's views; tenant users what their permissions grant.
      can: (permission: string) => Boolean(user?.is_admin) || permissions.has(permission),
    };
  }, [user, loading, endReason, signIn, verifyMfa, signOut]);

  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
