using System.ComponentModel;
using Diffuse.Data;
using Diffuse.Imaging;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse sample</c>.</summary>
public sealed class SampleSettings : SamplerSettings
{
    /// <summary>Model folder.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train'.")]
    public string? Model { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Number of samples (default 1000).")]
    public int Count { get; init; } = 1000;

    /// <summary>Output.</summary>
    [CommandOption("--out <FILE>")]
    [Description("samples.csv (a table in the data's units) or samples.png (a scatter plot of the first two columns).")]
    public string? Out { get; init; }
}

/// <summary><c>diffuse sample</c>.</summary>
public sealed class SampleCommand : Command<SampleSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, SampleSettings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new DiffuseException("--model is required: the folder of a trained model.");
        if (string.IsNullOrWhiteSpace(settings.Out)) throw new DiffuseException("--out is required: a .csv or .png file.");
        string extension = Path.GetExtension(settings.Out).ToLowerInvariant();
        if (extension != ".csv" && extension != ".png") throw new DiffuseException($"--out must end in .csv or .png (got '{settings.Out}').");
        if (settings.Count < 1) throw new DiffuseException($"--count must be at least 1 (got {settings.Count}).");
        CliContext.RequireSingleProcess("sample");
        settings.ApplyThreads();
        using var model = DiffusionModel.Load(settings.Model);
        model.ClampToDataRange = !settings.NoClamp;
        var (options, description) = settings.ResolveSampler(model, settings.Model);
        CliContext.Out.WriteLine($"sampler: {description}");
        using var scope = NewDisposeScope();
        var samples = Generate(model, settings.Count, settings.Seed, options, cancellationToken);
        if (extension == ".csv")
        {
            var values = new float[settings.Count, model.Dimensions];
            var flat = samples.contiguous().data<float>().ToArray();
            Buffer.BlockCopy(flat, 0, values, 0, flat.Length * sizeof(float));
            CsvTable.Save(settings.Out, model.Config.Data.Columns, values);
        }
        else
        {
            string title = $"{settings.Count} samples, {Diffuse.Sampling.SamplerNames.Name(options.Kind)} {options.StepCount(model.Schedule)} steps";
            Figures.SaveScatterPanels(settings.Out, new[] { Pictures.Panel(title, samples) }, new FigureOptions(AxisLimit: Pictures.AxisLimit(model.Config.Data)));
        }
        CliContext.Out.WriteLine($"wrote {settings.Count} samples to {Path.GetFullPath(settings.Out)}");
        return 0;
    }

    /// <summary>Samples with a progress bar over the sampler's steps.</summary>
    public static Tensor Generate(DiffusionModel model, int count, ulong seed, Diffuse.Sampling.SamplerOptions options, CancellationToken cancellationToken, string label = "sample", Action<Diffuse.Sampling.SamplerStep>? onStep = null)
    {
        int steps = options.StepCount(model.Schedule);
        const int batch = 4096;
        int batches = (count + batch - 1) / batch;
        using var bar = new ProgressBar(label, (long)steps * batches, "step");
        long done = 0;
        return model.Sample(count, seed, options, step =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            bar.Report(++done);
            onStep?.Invoke(step);
        });
    }
}
