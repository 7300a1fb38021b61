import { lazy, Suspense, type ReactNode } from "react";
import { BrowserRouter, Navigate, Route, Routes, useLocation } from "react-router-dom";
import { getTokens, prefetchJson } from "./api/client";
import { SessionProvider, useSession } from "./auth/session";
import { CompanyProvider } from "./components/company";
import { Layout } from "./components/Layout";
import { Empty, Loading } from "./components/States";
import SignIn from "./features/auth/SignIn";

const loadDashboard = () => import("./features/dashboard/Dashboard");
const Dashboard = lazy(loadDashboard);
// A cold load of the dashboard (the landing page) fetches its code while the session is restored,
// instead of after (ECharts still comes after the key figures).
if (/^\/(dashboard\/?)?$/.test(window.location.pathname) && getTokens()) {
  void loadDashboard();
  // Its figures too (the company an admin last looked at; a tenant user's own).
  const company = sessionStorage.getItem("soc.company");
  prefetchJson("/tenant/dashboard/", company ? { company_id: company } : {});
}
const ListPage = lazy(() => import("./features/lists/ListPage"));
const DetailPage = lazy(() => import("./features/details/DetailPage"));
const Reports = lazy(() => import("./features/reports/Reports"));
const Chat = lazy(() => import("./features/chat/Chat"));
const Admin = lazy(() => import("./features/admin/AdminPages"));
const Account = lazy(() => import("./features/account/Account"));
const SsoCallback = lazy(() => import("./features/auth/SsoCallback"));
const ActionsPage = lazy(() => import("./features/actions/ActionsPage"));
const Notifications = lazy(() => import("./features/notifications/Notifications"));
const NotificationSettings = lazy(() => import("./features/notifications/NotificationSettings"));
const Audit = lazy(() => import("./features/audit/Audit"));
const Matches = lazy(() => import("./features/ti/matches"));

function RequireSession({ children }: { children: ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (session.loading) return <Loading label="Restoring your session…" />;
  if (!session.user) return <Navigate to="/sign-in" replace state={{ from: location.pathname + location.search }} />;
  return <CompanyProvider>{children}</CompanyProvider>;
}

function Guard({ permission, admin, manager, children }: { permission?: string; admin?: boolean; manager?: boolean; children: ReactNode }) {
  const session = useSession();
  const allowed = admin ? session.isAdmin : manager ? session.isManager : !permission || permission.split(",").every((p) => session.can(p));
  return allowed ? <>{children}</> : <Empty>You do not have access to this page.</Empty>;
}

function Home() {
  const session = useSession();
  return <Navigate to={session.can("DASHBOARD") ? "/dashboard" : "/offenses"} replace />;
}

function NotFound() {
  return (
    <div className="state error" role="alert">
      <strong>Not found</strong>
      <p>There is no such page.</p>
    </div>
  );
}

export function App() {
  return (
    <BrowserRouter>
      <SessionProvider>
        <Suspense fallback={<Loading />}>
          <Routes>
            <Route path="/sign-in" element={<SignIn />} />
            <Route path="/sso/callback" element={<SsoCallback />} />
            <Route
              element={
                <RequireSession>
                  <Layout />
                </RequireSession>
              }
            >
              <Route index element={<Home />} />
              <Route path="dashboard" element={<Guard permission="DASHBOARD"><Dashboard /></Guard>} />
              <Route path="offenses" element={<ListPage kind="offenses" />} />
              <Route path="offenses/:id" element={<DetailPage kind="offenses" />} />
              <Route path="incidents" element={<ListPage kind="incidents" />} />
              <Route path="incidents/:id" element={<DetailPage kind="incidents" />} />
              <Route path="tickets" element={<ListPage kind="tickets" />} />
              <Route path="tickets/:id" element={<DetailPage kind="tickets" />} />
              <Route path="threat-alerts" element={<Guard permission="THREAT_INTELLIGENCE"><ListPage kind="threat-alerts" /></Guard>} />
              <Route path="threat-alerts/:id" element={<Guard permission="THREAT_INTELLIGENCE"><DetailPage kind="threat-alerts" /></Guard>} />
              <Route path="assets" element={<Guard permission="ASSETS"><ListPage kind="assets" /></Guard>} />
              <Route path="event-logs" element={<ListPage kind="event-logs" />} />
              <Route path="reports" element={<Guard permission="REPORTS"><Reports /></Guard>} />
              <Route path="chat" element={<Chat />} />
              <Route path="actions" element={<ActionsPage />} />
              <Route path="notifications" element={<Notifications />} />
              <Route path="notification-settings" element={<Guard manager><NotificationSettings /></Guard>} />
              <Route path="audit" element={<Guard manager><Audit /></Guard>} />
              <Route path="ti-matches" element={<Guard permission="THREAT_INTELLIGENCE,DASHBOARD"><Matches /></Guard>} />
              <Route path="account" element={<Account />} />
              <Route path="manage/:page" element={<Guard admin><Admin /></Guard>} />
              <Route path="*" element={<NotFound />} />
            </Route>
          </Routes>
        </Suspense>
      </SessionProvider>
    </BrowserRouter>
  );
}
