using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Imaging;
using Diffuse.IO;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse demo</c>.</summary>
public sealed class DemoSettings : CommonSettings
{
    /// <summary>Output folder.</summary>
    [CommandOption("--out <DIR>")]
    [Description("Run folder for the model, pictures and metrics (default runs/demo).")]
    public string Out { get; init; } = Path.Combine("runs", "demo");

    /// <summary>Data.</summary>
    [CommandOption("--data <NAME>")]
    [Description("Built-in 2-D distribution (default moons).")]
    public string Data { get; init; } = "moons";

    /// <summary>Steps.</summary>
    [CommandOption("--steps <N>")]
    [Description("Training steps (default 4000, about a minute on 2 cores).")]
    public int Steps { get; init; } = 4000;

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Samples per picture and per metric (default 2000).")]
    public int Count { get; init; } = 2000;
}

/// <summary>
/// <c>diffuse demo</c>: trains a 2-D model, then shows the forward process (data dissolving into a Gaussian), the
/// reverse trajectory (noise condensing back), DDPM and DDIM samples, the loss curve, and prints the metrics.
/// </summary>
public sealed class DemoCommand : Command<DemoSettings>
{
    private const float AxisLimit = 3.5f;

    /// <inheritdoc />
    public override int Execute(CommandContext context, DemoSettings settings, CancellationToken cancellationToken)
    {
        if (!ToyData.TryParse(settings.Data, out var kind))
            throw new DiffuseException($"--data must be a built-in distribution: {string.Join(", ", ToyData.Names)} (got '{settings.Data}').");
        if (settings.Steps < 1) throw new DiffuseException($"--steps must be at least 1 (got {settings.Steps}).");
        if (settings.Count < 100) throw new DiffuseException($"--count must be at least 100 (got {settings.Count}).");
        CliContext.RequireSingleProcess("demo");
        settings.ApplyThreads();
        string name = ToyData.NameOf(kind);
        string folder = settings.Out;
        Directory.CreateDirectory(folder);
        var clock = Stopwatch.StartNew();
        var output = CliContext.Out;
        output.WriteLine($"Diffuse demo: a diffusion model of the '{name}' distribution, written to {Path.GetFullPath(folder)}");

        using var scope = NewDisposeScope();
        using var data = TabularSource.Load(name, 20_000);
        var heldOut = TabularSource.ToyHeldOut(name, settings.Count);
        using var trainer = Trainer.Create(data.Rows, name, new TrainingConfig(Steps: settings.Steps, CheckpointEvery: settings.Steps), device: settings.TorchDevice());
        var normalisation = new Standardization(trainer.Config.Data.Mean, trainer.Config.Data.Std);

        // 1. The data and the forward process q(z_t | x) in closed form, in the model's standardised units.
        Figures.SaveScatterPanels(Path.Combine(folder, "data.png"),
            new[] { Pictures.Panel($"{name}: {settings.Count} training points", data.Rows.narrow(0, 0, settings.Count)) },
            new FigureOptions(AxisLimit: Pictures.AxisLimit(trainer.Config.Data)));
        var x0 = normalisation.Apply(data.Rows.narrow(0, 0, settings.Count));
        var schedule = trainer.Schedule;
        int T = schedule.Timesteps;
        var forwardSteps = new[] { 0, T / 20, T / 10, T / 5, 2 * T / 5, 3 * T / 5, T - 1 };
        var eps = Diffuse.Randomness.SeededNoise.Normal(42, 0, 0, settings.Count, new long[] { 2 });
        var forwardPanels = new List<ScatterPanel> { Pictures.Panel("x (t = 0)", x0) };
        foreach (int n in forwardSteps.Skip(1))
        {
            double alphaBar = schedule.AlphaBar(n);
            var z = GaussianProcess.Noise(x0, tensor(alphaBar, dtype: ScalarType.Float32), eps);
            forwardPanels.Add(Pictures.Panel($"t = {n + 1}, abar = {alphaBar:0.000}", z));
        }
        Figures.SaveScatterPanels(Path.Combine(folder, "forward.png"), forwardPanels,
            new FigureOptions(AxisLimit: AxisLimit, Caption: "Forward process q(z_t | x) = N(sqrt(abar) x, (1 - abar) I): the data dissolves into N(0, I)"), columns: 4);

        // 2. Training.
        TrainCommand.TrainWithProgress(trainer, folder, cancellationToken);
        using var model = trainer.ToModel();

        // 3. The reverse trajectory of DDPM, snapshots in standardised units.
        var ddpm = new SamplerOptions(SamplerKind.Ddpm);
        var snapshotsAt = new HashSet<int> { 1, T / 4, T / 2, 3 * T / 4, 9 * T / 10, T };
        var reversePanels = new List<ScatterPanel> { Pictures.Panel($"z_T ~ N(0, I), t = {T}", Diffuse.Randomness.SeededNoise.Normal(1, 0, 0, settings.Count, new long[] { 2 })) };
        var ddpmSamples = SampleCommand.Generate(model, settings.Count, 1, ddpm, cancellationToken, "ddpm", step =>
        {
            if (snapshotsAt.Contains(step.Step) && step.Step > 1)
                reversePanels.Add(Pictures.Panel(step.Step == T ? "x (t = 0)" : $"t = {step.Timestep + 1}", step.Z));
        });
        Figures.SaveScatterPanels(Path.Combine(folder, "reverse.png"), reversePanels,
            new FigureOptions(AxisLimit: AxisLimit, Caption: "Reverse process (DDPM, 1000 steps): noise condenses back into the distribution"), columns: 3);

        // 4. Samples: DDPM (all steps) and DDIM (50 steps, deterministic) beside real held-out data.
        var ddim = new SamplerOptions(SamplerKind.Ddim, 50, Eta: 0);
        var ddimSamples = SampleCommand.Generate(model, settings.Count, 1, ddim, cancellationToken, "ddim");
        Figures.SaveScatterPanels(Path.Combine(folder, "samples.png"), new[]
        {
            Pictures.Panel($"real (held out), {settings.Count}", heldOut),
            Pictures.Panel($"DDPM, {T} steps", ddpmSamples),
            Pictures.Panel("DDIM, 50 steps, eta = 0", ddimSamples),
        }, new FigureOptions(AxisLimit: Pictures.AxisLimit(trainer.Config.Data)));

        // 5. Metrics beside their noise floors, and the bound on held-out data.
        var train = data.Rows;
        var report = new StringBuilder();
        report.AppendLine($"data: {name}; {trainer.Step} training steps; {settings.Count} samples per metric");
        foreach (var (label, samples) in new[] { ($"DDPM ({T} steps)", ddpmSamples), ("DDIM (50 steps, eta 0)", ddimSamples) })
        {
            var metrics = SampleMetrics.Evaluate(samples, train, heldOut, seed: 0);
            report.AppendLine($"-- {label}");
            report.AppendLine(metrics.Format());
        }
        var bound = EvalCommand.ComputeBound(model, heldOut, DdpmVariance.Large, DecoderVariance.ClippedPosterior, cancellationToken);
        report.AppendLine(EvalCommand.FormatBound(bound, settings.Count));
        report.AppendLine($"wall time: {clock.Elapsed.TotalSeconds:F0} s");
        AtomicFile.WriteAllText(Path.Combine(folder, "metrics.txt"), report.ToString());
        output.Write(report.ToString());
        output.WriteLine("pictures:");
        foreach (var file in new[] { "data.png", "forward.png", "reverse.png", "samples.png", "loss.png" })
            output.WriteLine($"  {Path.GetFullPath(Path.Combine(folder, file))}");
        output.WriteLine($"model: {Path.GetFullPath(folder)} (try: diffuse sample --model {folder} --count 2000 --out samples.png)");
        return 0;
    }
}
