import { useEffect, useRef, useState } from "react";
import { BarChart, LineChart, PieChart } from "echarts/charts";
import { DatasetComponent, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import type { EChartsCoreOption } from "echarts/core";

echarts.use([BarChart, LineChart, PieChart, GridComponent, TooltipComponent, LegendComponent, DatasetComponent, MarkLineComponent, CanvasRenderer]);

/** One ECharts chart; `summary` is what a screen reader gets instead of the canvas. */
/** The page's theme, followed as it changes (the theme switch sets <html data-theme>). */
function useDarkTheme(): boolean {
  const read = () => document.documentElement.dataset.theme === "dark";
  const [dark, setDark] = useState(read);
  useEffect(() => {
    const observer = new MutationObserver(() => setDark(read()));
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    return () => observer.disconnect();
  }, []);
  return dark;
}

export function Chart({ option, summary, height = 280 }: { option: EChartsCoreOption; summary: string; height?: number }) {
  const ref = useRef<HTMLDivElement>(null);
  const dark = useDarkTheme();
  useEffect(() => {
    if (!ref.current) return;
    const chart = echarts.init(ref.current, dark ? "dark" : undefined, { renderer: "canvas" });
    chart.setOption({ backgroundColor: "transparent", animation: false, textStyle: { fontFamily: "inherit" }, ...option });
    const resize = () => chart.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.dispose();
    };
  }, [option, dark]);
  return <div ref={ref} className="chart" style={{ height }} role="img" aria-label={summary} />;
}
