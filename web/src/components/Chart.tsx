import { useEffect, useRef } from "react";
import { BarChart, LineChart, PieChart } from "echarts/charts";
import { DatasetComponent, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import type { EChartsCoreOption } from "echarts/core";

echarts.use([BarChart, LineChart, PieChart, GridComponent, TooltipComponent, LegendComponent, DatasetComponent, MarkLineComponent, CanvasRenderer]);

/** One ECharts chart; `summary` is what a screen reader gets instead of the canvas. */
export function Chart({ option, summary, height = 280 }: { option: EChartsCoreOption; summary: string; height?: number }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const dark = document.documentElement.dataset.theme === "dark";
    const chart = echarts.init(ref.current, dark ? "dark" : undefined, { renderer: "canvas" });
    chart.setOption({ backgroundColor: "transparent", animation: false, textStyle: { fontFamily: "inherit" }, ...option });
    const resize = () => chart.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.dispose();
    };
  }, [option]);
  return <div ref={ref} className="chart" style={{ height }} role="img" aria-label={summary} />;
}
