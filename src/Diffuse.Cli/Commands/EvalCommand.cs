using System.ComponentModel;
using Diffuse.Data;
using Diffuse.Evaluation;
using Diffuse.Sampling;
using Diffuse.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse eval</c>.</summary>
public sealed class EvalSettings : SamplerSettings
{
    /// <summary>Model folder.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train'.")]
    public string? Model { get; init; }

    /// <summary>Data.</summary>
    [CommandOption("--data <DATA>")]
    [Description("The data to compare with: the built-in distribution or CSV file the model was trained on (its held-out rows are used), or another CSV file with the same columns.")]
    public string? Data { get; init; }

    /// <summary>NLL.</summary>
    [CommandOption("--nll")]
    [Description("Also compute the variational bound on the negative log-likelihood of the held-out data (nats/dim in the data's units).")]
    public bool Nll { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Generated samples and real points per metric (default 2000).")]
    public int Count { get; init; } = 2000;

    /// <summary>Bound variance.</summary>
    [CommandOption("--nll-variance <NAME>")]
    [Description("Reverse variance in the bound: large (β, default: the tight choice for continuous data) or small (β̃).")]
    public string NllVariance { get; init; } = "large";
}

/// <summary><c>diffuse eval</c>.</summary>
public sealed class EvalCommand : Command<EvalSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, EvalSettings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new DiffuseException("--model is required: the folder of a trained model.");
        if (string.IsNullOrWhiteSpace(settings.Data)) throw new DiffuseException("--data is required: the data to compare the model with.");
        if (settings.Count < 10) throw new DiffuseException($"--count must be at least 10 (got {settings.Count}).");
        settings.ApplyThreads();
        var boundVariance = Parse.Enum<DdpmVariance>("--nll-variance", settings.NllVariance);
        using var model = DiffusionModel.Load(settings.Model);
        model.ClampToDataRange = !settings.NoClamp;
        var (options, samplerDescription) = settings.ResolveSampler(model, settings.Model);
        using var scope = NewDisposeScope();
        var (train, heldOut, description) = ResolveData(model, settings.Data, settings.Count);
        int count = (int)Math.Min(settings.Count, Math.Min(train.shape[0], heldOut.shape[0] * 4));
        CliContext.Out.WriteLine($"model {settings.Model}: {model.Config.Data.Source}, {model.Config.Step} steps; comparing with {description}");
        CliContext.Out.WriteLine($"sampler: {samplerDescription}; {count} samples");
        var generated = SampleCommand.Generate(model, count, settings.Seed, options, cancellationToken);
        var report = SampleMetrics.Evaluate(generated, train, heldOut, seed: (long)settings.Seed);
        CliContext.Out.WriteLine(report.Format());
        if (settings.Nll)
        {
            var bound = ComputeBound(model, heldOut, boundVariance, cancellationToken);
            CliContext.Out.WriteLine(FormatBound(bound, (int)heldOut.shape[0]));
        }
        return 0;
    }

    /// <summary>The bound with a progress bar.</summary>
    public static BoundResult ComputeBound(DiffusionModel model, Tensor data, DdpmVariance variance, CancellationToken cancellationToken)
    {
        ProgressBar? bar = null;
        try
        {
            return model.Bound(data, 0, variance, (done, total) =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                bar ??= new ProgressBar("nll", total, "t");
                bar.Report(done);
            });
        }
        finally
        {
            bar?.Dispose();
        }
    }

    /// <summary>One line describing the bound.</summary>
    public static string FormatBound(BoundResult bound, int rows) =>
        $"variational bound on held-out NLL ({rows} rows): {Parse.F(bound.NatsPerDim)} ± {Parse.F(bound.StdError)} nats/dim " +
        $"({Parse.F(bound.BitsPerDim)} bits/dim); parts per dim: prior {Parse.F(bound.PriorNatsPerDim, 5)}, diffusion {Parse.F(bound.DiffusionNatsPerDim)}, decoder {Parse.F(bound.DecoderNatsPerDim)}";

    /// <summary>
    /// Real data to compare with: for a built-in distribution, the model's training draw and a fresh held-out draw; for
    /// the CSV file the model was trained on, its training and held-out rows; for another CSV file, two halves of it.
    /// </summary>
    public static (Tensor Train, Tensor HeldOut, string Description) ResolveData(DiffusionModel model, string data, int count)
    {
        var config = model.Config.Data;
        if (TabularSource.IsToy(data))
        {
            using var loaded = TabularSource.Load(data, config.Count);
            if (!string.Equals(loaded.Source, config.Source, StringComparison.OrdinalIgnoreCase))
                throw new DiffuseException($"the model was trained on '{config.Source}', not '{loaded.Source}'. Give --data {config.Source}.");
            return (loaded.Rows.alias(), TabularSource.ToyHeldOut(data, count), $"{count} fresh points of {loaded.Source}");
        }
        using var table = TabularSource.Load(data, 0);
        model.CheckColumns(table.Rows);
        if (config.Holdout > 0)
        {
            var (train, held) = TabularSource.Split(table.Rows, config.Holdout);
            if (Trainer.Fingerprint(train) == config.Fingerprint)
                return (train, held, $"the {held.shape[0]} held-out rows of {data}");
            train.Dispose();
            held.Dispose();
        }
        else if (Trainer.Fingerprint(table.Rows) == config.Fingerprint)
        {
            throw new DiffuseException($"the model was trained on every row of {data} (--holdout 0), so no held-out rows are left to measure it on. Give a CSV file of other rows with the same columns.");
        }
        var (first, second) = TabularSource.Split(table.Rows, 0.5);
        return (first, second, $"{data} (not the training file: one half is the real reference, the other the held-out set)");
    }
}
