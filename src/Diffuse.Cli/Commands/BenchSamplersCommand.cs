using System.ComponentModel;
using System.Globalization;
using System.Text;
using Diffuse.Data;
using Diffuse.Evaluation;
using Diffuse.Imaging;
using Diffuse.IO;
using Diffuse.Sampling;
using SkiaSharp;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse bench-samplers</c>.</summary>
public sealed class BenchSamplersSettings : CommonSettings
{
    /// <summary>Model folder.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train'; the results are written into it.")]
    public string? Model { get; init; }

    /// <summary>Budgets.</summary>
    [CommandOption("--budgets <LIST>")]
    [Description("Comma-separated budgets of network evaluations (NFE) per sample (default 5,10,20,50,100). Each sampler gets the most steps whose cost fits: Heun makes two evaluations per step.")]
    public string? Budgets { get; init; }

    /// <summary>Data.</summary>
    [CommandOption("--data <DATA>")]
    [Description("The real data to score samples against, as for 'diffuse eval' (default: the data the model was trained on).")]
    public string? Data { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Samples per setting and real points per metric (default 2000).")]
    public int Count { get; init; } = 2000;

    /// <summary>Seed.</summary>
    [CommandOption("--seed <S>")]
    [Description("Seed: every setting draws samples 0 … N−1 of this seed, so all start from the same noise. Default 0.")]
    public ulong Seed { get; init; }

    /// <summary>Samplers.</summary>
    [CommandOption("--samplers <LIST>")]
    [Description("Comma-separated samplers to compare (default all: ddpm, ddim, euler, heun, euler-ancestral, dpm++2m, dpm++3m, dpm++2m-sde, unipc).")]
    public string? Samplers { get; init; }

    /// <summary>Spacings.</summary>
    [CommandOption("--spacings <LIST>")]
    [Description("Comma-separated spacings (default trailing,karras,logsnr; also leading, linspace). ddpm and ddim use only trailing, leading and linspace.")]
    public string? Spacings { get; init; }
}

/// <summary>
/// <c>diffuse bench-samplers</c>: measures every sampler, spacing and budget of network evaluations on a trained model
/// (<see cref="SamplerBenchmark"/>), prints the table, writes bench-samplers.csv, bench-samplers.png and sampler.json
/// (the best setting per budget, which <c>diffuse sample</c> and <c>diffuse eval</c> then use by default) into the
/// model folder.
/// </summary>
public sealed class BenchSamplersCommand : Command<BenchSamplersSettings>
{
    /// <summary>The results table in the model folder.</summary>
    public const string CsvFile = "bench-samplers.csv";

    /// <summary>The plot in the model folder.</summary>
    public const string PngFile = "bench-samplers.png";

    /// <inheritdoc />
    public override int Execute(CommandContext context, BenchSamplersSettings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new DiffuseException("--model is required: the folder of a trained model.");
        if (settings.Count < 10) throw new DiffuseException($"--count must be at least 10 (got {settings.Count}).");
        var budgets = ParseBudgets(settings.Budgets);
        var samplers = settings.Samplers is null ? Enum.GetValues<SamplerKind>() : SplitList(settings.Samplers, "--samplers").Select(n => SamplerNames.Parse(n, "--samplers")).ToArray();
        var spacings = settings.Spacings is null ? SamplerBenchmarkOptions.DefaultSpacings.ToArray() : SplitList(settings.Spacings, "--spacings").Select(n => SamplerSpacings.Parse(n)).ToArray();
        new SamplerBenchmarkOptions(budgets, samplers, spacings, settings.Count, settings.Seed).Validate();
        settings.ApplyThreads();

        string folder = settings.Model;
        using var model = DiffusionModel.Load(folder);
        using var scope = NewDisposeScope();
        string data = settings.Data ?? DefaultData(model);
        var (train, heldOut, description) = EvalCommand.ResolveData(model, data, settings.Count);
        // The same count and seed as 'diffuse eval', so every cell can be reproduced with it.
        int count = (int)Math.Min(settings.Count, Math.Min(train.shape[0], heldOut.shape[0] * 4));
        var options = new SamplerBenchmarkOptions(budgets, samplers, spacings, count, settings.Seed);
        var metric = CreateMetric(train, heldOut, settings.Seed);
        int settingsToMeasure = SamplerBenchmark.Settings(model.Schedule, options).Count;

        var output = CliContext.Out;
        output.WriteLine($"model {folder}: {model.Config.Data.Source}, {model.Config.Step} training steps, T = {model.Schedule.Timesteps}; scoring against {description}");
        output.WriteLine($"measuring {settingsToMeasure} sampler settings (first DDPM and DDIM with all {model.Schedule.Timesteps} steps: the reference and the ODE limit), {count} samples each, seed {settings.Seed}, metric: {metric.Name}");

        SamplerBenchmarkResult result;
        using (var bar = new ProgressBar("bench", settingsToMeasure, "setting"))
        {
            result = SamplerBenchmark.Run(model, metric, options, p =>
                bar.Report(p.Done, $"{p.Run.Setting.Describe(model.Schedule)}: {Num(p.Run.Quality.Value)}"), cancellationToken);
        }

        output.Write(FormatTable(result, model));
        var record = SamplerRecord.From(result, model.Config.Step);
        string csv = Path.Combine(folder, CsvFile), png = Path.Combine(folder, PngFile), json = Path.Combine(folder, SamplerRecord.FileName);
        AtomicFile.WriteAllText(csv, ToCsv(result));
        SavePlot(png, result, model);
        record.Save(folder);
        var chosen = result.Best.First(r => r.Budget == result.DefaultBudget);
        bool matches = metric.Matches(chosen.Quality, result.Reference.Quality);
        output.WriteLine(matches
            ? $"default for 'diffuse sample' and 'eval' without --sampler: budget {result.DefaultBudget}, the smallest whose best setting matches the reference ({MatchRule(metric)})"
            : $"default for 'diffuse sample' and 'eval' without --sampler: budget {result.DefaultBudget}, the largest (no budget's best setting matched the reference: {MatchRule(metric)})");
        output.WriteLine($"  {chosen.Setting.Describe(model.Schedule)}; --nfe N takes the best of the largest budget up to N, --sampler overrides");
        output.WriteLine($"wrote {Path.GetFullPath(csv)}, {Path.GetFullPath(png)} and {Path.GetFullPath(json)}");
        return 0;
    }

    /// <summary>
    /// The quality metric for this model's data: the KDE score for tabular and 2-D models (the only kind so far). An
    /// image model would get a Fréchet distance on features here (see <see cref="ISampleQualityMetric"/>).
    /// </summary>
    private static ISampleQualityMetric CreateMetric(Tensor train, Tensor heldOut, ulong seed) => new KdeScoreMetric(train, heldOut, (long)seed);

    private static string MatchRule(ISampleQualityMetric metric) =>
        metric is KdeScoreMetric ? $"a KDE score at most {Num(KdeScoreMetric.Tolerance, 2)} nats below it" : "within the metric's tolerance";

    /// <summary>The data the model was trained on, when it can be found again.</summary>
    private static string DefaultData(DiffusionModel model)
    {
        string source = model.Config.Data.Source;
        if (TabularSource.IsToy(source) || File.Exists(source)) return source;
        throw new DiffuseException($"--data is required: the model was trained on '{source}', which is not a built-in distribution or an existing file here. Give the same data (or a CSV file with the same columns).");
    }

    private static int[] ParseBudgets(string? text)
    {
        if (text is null) return SamplerBenchmarkOptions.DefaultBudgets.ToArray();
        var budgets = new List<int>();
        foreach (var part in SplitList(text, "--budgets"))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int b) || b < 1)
                throw new DiffuseException($"--budgets must be a comma-separated list of whole numbers of at least 1, such as 5,10,20 (got '{text}').");
            budgets.Add(b);
        }
        return budgets.ToArray();
    }

    private static string[] SplitList(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new DiffuseException($"{option} is empty: give a comma-separated list.");
        return parts;
    }

    private static string Num(double value, int digits = 4) =>
        double.IsNaN(value) ? "n/a" : value.ToString("F" + digits, CultureInfo.InvariantCulture);

    private static string Seconds(double seconds) =>
        seconds.ToString(seconds < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + " s";

    /// <summary>The table: one row per sampler and spacing, one column per budget; then the reference and the best per budget.</summary>
    internal static string FormatTable(SamplerBenchmarkResult result, DiffusionModel model)
    {
        var budgets = result.Options.Budgets.Order().ToArray();
        var rows = result.Runs.GroupBy(r => (r.Setting.Kind, r.Setting.Spacing)).ToList();
        const int cellWidth = 30;
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine($"{result.MetricName} ({result.MetricUnit}, {(result.HigherIsBetter ? "higher" : "lower")} is better) ± s.e., and seconds for {result.Options.Count} samples; * marks the best of a budget, (n) fewer evaluations than the budget");
        sb.Append($"{"sampler",-16}{"spacing",-10}");
        foreach (int b in budgets) sb.Append($"{b + " NFE",cellWidth}");
        sb.AppendLine();
        foreach (var row in rows)
        {
            sb.Append($"{SamplerNames.Name(row.Key.Kind),-16}{SamplerSpacings.Name(row.Key.Spacing),-10}");
            foreach (int b in budgets)
            {
                var run = row.FirstOrDefault(r => r.Budget == b);
                if (run is null) { sb.Append(new string(' ', cellWidth)); continue; }
                bool best = result.Best.Any(x => x.Budget == b && x.Setting == run.Setting);
                string cost = run.FunctionEvaluations < b ? $"({run.FunctionEvaluations})" : "";
                string cell = $"{(best ? "*" : "")}{cost} {Num(run.Quality.Value)} ± {Num(run.Quality.StdError)} {run.Seconds.ToString("0.00", CultureInfo.InvariantCulture)}s";
                sb.Append("  " + cell.PadLeft(cellWidth - 2));
            }
            sb.AppendLine();
        }
        var reference = result.Reference;
        double Gap(double value) => result.HigherIsBetter ? reference.Quality.Value - value : value - reference.Quality.Value;
        sb.AppendLine($"reference: {reference.Setting.Describe(model.Schedule)} ({reference.FunctionEvaluations} NFE): {Num(reference.Quality.Value)} ± {Num(reference.Quality.StdError)}, {Seconds(reference.Seconds)}");
        var ode = result.OdeLimit;
        sb.AppendLine($"ODE limit: {ode.Setting.Describe(model.Schedule)} ({ode.FunctionEvaluations} NFE): {Num(ode.Quality.Value)} ± {Num(ode.Quality.StdError)}, {Seconds(ode.Seconds)} " +
                      $"({Num(Gap(ode.Quality.Value))} worse than the reference: the deterministic samplers converge to it)");
        sb.AppendLine($"best per budget (recorded in {SamplerRecord.FileName}):");
        foreach (var best in result.Best)
        {
            sb.AppendLine($"  {best.Budget,4} NFE: {best.Setting.Describe(model.Schedule),-36} {Num(best.Quality.Value)} ± {Num(best.Quality.StdError)}  ({Num(Gap(best.Quality.Value))} worse than the reference), {Seconds(best.Seconds)}");
        }
        return sb.ToString();
    }

    /// <summary>bench-samplers.csv: the reference, the ODE limit, then every cell, with the metric's details.</summary>
    internal static string ToCsv(SamplerBenchmarkResult result)
    {
        var c = CultureInfo.InvariantCulture;
        var details = result.Reference.Quality.Details.Select(d => d.Key)
            .Concat(result.Runs.SelectMany(r => r.Quality.Details.Select(d => d.Key))).Distinct().ToArray();
        var sb = new StringBuilder();
        sb.AppendLine("role,sampler,spacing,budget,steps,nfe,score,std_error,seconds,best" + string.Concat(details.Select(d => "," + d)));
        string Line(string role, SamplerRun r, bool best)
        {
            string Value(double v) => double.IsNaN(v) ? "" : v.ToString("R", c);
            var detail = details.Select(d => r.Quality.Details.FirstOrDefault(x => x.Key == d) is { Key: not null } kv ? Value(kv.Value) : "");
            return $"{role},{SamplerNames.Name(r.Setting.Kind)},{SamplerSpacings.Name(r.Setting.Spacing)},{r.Budget},{r.Setting.Steps},{r.FunctionEvaluations}," +
                   $"{Value(r.Quality.Value)},{Value(r.Quality.StdError)},{r.Seconds.ToString("0.000", c)},{(best ? 1 : 0)}" + string.Concat(detail.Select(d => "," + d));
        }
        sb.AppendLine(Line("reference", result.Reference, false));
        sb.AppendLine(Line("ode-limit", result.OdeLimit, false));
        foreach (var run in result.Runs)
            sb.AppendLine(Line("grid", run, result.Best.Any(b => b.Budget == run.Budget && b.Setting == run.Setting)));
        return sb.ToString();
    }

    /// <summary>
    /// bench-samplers.png: one line chart per spacing, stacked, each with a line per sampler (the same colour in every
    /// chart) of the gap to the reference (how much worse than DDPM with every trained timestep) against the evaluations
    /// per sample, on a log scale, with the ODE limit as a flat line. Gaps below a floor (including settings that scored
    /// better than the reference) are drawn at the floor, the largest power of ten not above the smallest positive gap,
    /// and gaps more than four decades above it at that limit.
    /// </summary>
    internal static void SavePlot(string path, SamplerBenchmarkResult result, DiffusionModel model)
    {
        double reference = result.Reference.Quality.Value;
        double Gap(double value) => result.HigherIsBetter ? reference - value : value - reference;
        var positive = result.Runs.Select(r => Gap(r.Quality.Value)).Append(Gap(result.OdeLimit.Quality.Value))
            .Where(g => double.IsFinite(g) && g > 0).DefaultIfEmpty(1).ToList();
        double floor = Math.Pow(10, Math.Floor(Math.Log10(positive.Min()))), top = floor * 1e4;
        bool clipped = result.Runs.Any(r => Gap(r.Quality.Value) > top);
        double Plotted(double value) => double.IsNaN(value) ? double.NaN : Math.Clamp(Gap(value), floor, top);
        var kinds = Enum.GetValues<SamplerKind>();
        var spacings = result.Runs.Select(r => r.Setting.Spacing).Distinct().ToList();
        var xs = result.Runs.Select(r => (double)r.FunctionEvaluations).ToList();
        var charts = new List<SKBitmap>();
        try
        {
            foreach (var spacing in spacings)
            {
                var series = new List<LineSeries>();
                foreach (var kind in kinds)
                {
                    var runs = result.Runs.Where(r => r.Setting.Kind == kind && r.Setting.Spacing == spacing)
                        .GroupBy(r => r.FunctionEvaluations).Select(g => g.First()).OrderBy(r => r.FunctionEvaluations).ToList();
                    // An empty series keeps each sampler's colour the same in every chart; without a name it has no legend entry.
                    series.Add(new LineSeries(runs.Count == 0 ? "" : SamplerNames.Name(kind),
                        runs.Select(r => (double)r.FunctionEvaluations).ToArray(), runs.Select(r => Plotted(r.Quality.Value)).ToArray()));
                }
                double ode = Plotted(result.OdeLimit.Quality.Value);
                series.Add(new LineSeries($"ODE limit: ddim, {model.Schedule.Timesteps} steps", new[] { xs.Min(), xs.Max() }, new[] { ode, ode }));
                string title = $"{SamplerSpacings.Name(spacing)}: {result.MetricName} gap to {model.Schedule.Timesteps}-step DDPM (lower is better)";
                string low = floor.ToString("G3", CultureInfo.InvariantCulture), high = top.ToString("G3", CultureInfo.InvariantCulture);
                string xLabel = clipped ? $"NFE per sample; gaps outside {low} to {high} drawn at the limit" : $"NFE per sample; gaps below {low} drawn at it";
                charts.Add(Figures.RenderLineChart(title, series, xLabel, $"gap ({result.MetricUnit})", logY: true));
            }
            using var figure = new SKBitmap(Figures.LineChartWidth, Figures.LineChartHeight * charts.Count);
            using (var canvas = new SKCanvas(figure))
            {
                canvas.Clear(SKColors.White);
                for (int i = 0; i < charts.Count; i++) canvas.DrawBitmap(charts[i], 0, i * Figures.LineChartHeight);
            }
            AtomicFile.WriteAllBytes(path, Figures.EncodePng(figure));
        }
        finally
        {
            foreach (var chart in charts) chart.Dispose();
        }
    }
}
