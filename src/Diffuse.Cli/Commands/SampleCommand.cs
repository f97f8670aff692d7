using System.ComponentModel;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Sampling;
using Diffuse.Imaging;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse sample</c>.</summary>
public sealed class SampleSettings : SamplerSettings
{
    /// <summary>Model folder.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train', or the name of a model shipped with Diffuse (fashion-mnist).")]
    public string? Model { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Number of samples (default 1000 for tables; for images 100, 25 with --class, and for a class-conditional model without --class 10 per class).")]
    public int? Count { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <PATH>")]
    [Description("Tables: samples.csv (in the data's units) or samples.png (scatter plot). Images: grid.png (one row per class for a class-conditional model) or a folder, which gets one PNG per sample named by seed and number.")]
    public string? Out { get; init; }

    /// <summary>Class.</summary>
    [CommandOption("--class <K>")]
    [Description("Class-conditional models: sample only this class (its number or name, e.g. 7 or sneaker).")]
    public string? Class { get; init; }

    /// <summary>Guidance.</summary>
    [CommandOption("--guidance <W>")]
    [Description("Classifier-free guidance scale s: ε = ε_uncond + s·(ε_cond − ε_uncond), as diffusers' guidance_scale; 0 unconditional, 1 plain conditional, larger = more typical of the class, less varied (default 1.5). Ho and Salimans (2022) write w = s − 1.")]
    public double? Guidance { get; init; }

    /// <summary>Animation.</summary>
    [CommandOption("--animation <FILE>")]
    [Description("Images: also write a GIF of the reverse process (noise condensing into the first images of the grid, at most 100; frames spaced by visible change, each labelled with its step).")]
    public string? Animation { get; init; }

    /// <summary>Scale.</summary>
    [CommandOption("--scale <N>")]
    [Description("Images: draw each pixel as N×N pixels, 1 to 16 (grids: default 2 for images under 64 pixels, else 1; the animation: default 1, to keep the GIF small).")]
    public int? Scale { get; init; }
}

/// <summary><c>diffuse sample</c>.</summary>
public sealed class SampleCommand : Command<SampleSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, SampleSettings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new DiffuseException("--model is required: the folder of a trained model, or a shipped model's name (fashion-mnist).");
        if (string.IsNullOrWhiteSpace(settings.Out)) throw new DiffuseException("--out is required: a .csv or .png file, or for images a folder.");
        if (settings.Count is < 1) throw new DiffuseException($"--count must be at least 1 (got {settings.Count}).");
        CliContext.RequireSingleProcess("sample");
        string folder = ModelFolders.Resolve(settings.Model);
        using var model = DiffusionModel.Load(folder, settings.TorchDevice());
        settings.ApplyThreads(model.IsImage);
        model.ClampToDataRange = !settings.NoClamp;
        if (model.IsImage) return SampleImages(model, folder, settings, cancellationToken);
        foreach (var (given, name) in new[] { (settings.Class is not null, "--class"), (settings.Guidance is not null, "--guidance"), (settings.Animation is not null, "--animation"), (settings.Scale is not null, "--scale") })
            if (given) throw new DiffuseException($"{name} applies to image models; {settings.Model} was trained on a table.");
        string extension = Path.GetExtension(settings.Out).ToLowerInvariant();
        if (extension != ".csv" && extension != ".png") throw new DiffuseException($"--out must end in .csv or .png (got '{settings.Out}').");
        int count = settings.Count ?? 1000;
        if (extension == ".png" && count > MaxScatterPoints)
            throw new DiffuseException($"--count {count} is too many points for one scatter plot (at most {MaxScatterPoints:N0}); write the samples to a .csv file, or plot fewer.");
        var (options, description) = settings.ResolveSampler(model, folder);
        CliContext.Out.WriteLine($"sampler: {description}");
        RequireMemory(model, count);
        if (extension == ".csv")
        {
            // One batch at a time, each written as soon as it is drawn: memory does not grow with --count.
            CsvTable.Save(settings.Out, model.Config.Data.Columns, GenerateBatches(model, count, settings.Seed, options, cancellationToken).Select(ToRows));
        }
        else
        {
            using var scope = NewDisposeScope();
            var samples = Generate(model, count, settings.Seed, options, cancellationToken);
            string title = $"{count} samples, {Diffuse.Sampling.SamplerNames.Name(options.Kind)} {options.StepCount(model.Schedule)} steps";
            Figures.SaveScatterPanels(settings.Out, new[] { Pictures.Panel(title, samples) }, new FigureOptions(AxisLimit: Pictures.AxisLimit(model.Config.Data)));
        }
        CliContext.Out.WriteLine($"wrote {count} samples to {Path.GetFullPath(settings.Out)}");
        return 0;
    }

    /// <summary>The most points of one scatter plot: more only hide each other.</summary>
    public const int MaxScatterPoints = 100_000;

    /// <summary>The most images of one grid (a 32×32 grid); more belong in a folder, one PNG each.</summary>
    public const int MaxGridImages = 1_024;

    /// <summary>A batch of table samples [B, D] as rows, the batch disposed.</summary>
    internal static float[,] ToRows(Tensor batch)
    {
        using var scope = NewDisposeScope();
        using (batch)
        {
            var rows = new float[batch.shape[0], batch.shape[1]];
            var source = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(batch.contiguous().bytes);
            source.CopyTo(System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref rows[0, 0], rows.Length));
            return rows;
        }
    }

    /// <summary>Refuses at once a sampling batch whose activations do not fit in the memory available.</summary>
    private static void RequireMemory(DiffusionModel model, int count)
    {
        int batch = Math.Min(count, model.IsImage ? DiffusionModel.DefaultImageBatch : DiffusionModel.DefaultTableBatch);
        long perExample = Diffuse.Runtime.MemoryBudget.ActivationBytesPerExample(model.Config.Network, model.ExampleShape, training: false);
        Diffuse.Runtime.MemoryBudget.Require((long)Math.Min(long.MaxValue / 2, (double)batch * perExample), $"sampling a batch of {batch} from this model",
            "sample on a machine with more memory (the batch is the library's default, and memory does not grow with --count)");
    }

    private static int SampleImages(DiffusionModel model, string folder, SampleSettings settings, CancellationToken cancellationToken)
    {
        string extension = Path.GetExtension(settings.Out!).ToLowerInvariant();
        bool grid = extension == ".png";
        if (!grid && extension != "")
            throw new DiffuseException($"for images --out is a .png grid or a folder for one PNG per sample (got '{settings.Out}').");
        if (settings.Animation is { } gifPath && !gifPath.EndsWith(".gif", StringComparison.OrdinalIgnoreCase))
            throw new DiffuseException($"--animation must end in .gif (got '{gifPath}').");
        if (settings.Scale is < 1 or > 16) throw new DiffuseException($"--scale must be 1 to 16 (got {settings.Scale}).");
        int scale = settings.Scale ?? Pictures.DefaultScale((int)model.ExampleShape[1]);
        int classes = model.ClassCount;
        if (classes == 0 && (settings.Class is not null || settings.Guidance is not null))
            throw new DiffuseException($"{(settings.Class is not null ? "--class" : "--guidance")} needs a class-conditional model; {settings.Model} was trained without classes.");
        long? only = settings.Class is null ? null : ParseClass(settings.Class, model);
        double guidance = settings.Guidance ?? SamplingDefaults.Guidance;
        var plan = ImageSamplePlan.For(model, settings.Count, only);
        var (count, labels, columns, rowLabels) = (plan.Count, plan.Labels, plan.Columns, plan.RowLabels);
        if (grid && count > MaxGridImages)
            throw new DiffuseException($"--count {count} is too many images for one grid (at most {MaxGridImages:N0}); give a folder as --out to write one PNG per sample.");
        var (options, description) = settings.ResolveSampler(model, folder, imageDefault: true);
        RequireMemory(model, count);
        string what = labels is null ? "unconditional" : only is { } c ? $"class {c} ({model.ClassNames[(int)c]}), guidance {guidance:0.##}" : $"{classes} classes, guidance {guidance:0.##}";
        CliContext.Out.WriteLine($"sampler: {description}; {what}");
        using var animation = settings.Animation is null ? null : new ReverseAnimation(options.StepCount(model.Schedule), Math.Min(count, 100));
        {
            using var scope = NewDisposeScope();
            Action<Diffuse.Sampling.SamplerStep>? onFrame = animation is null ? null : animation.Add;
            if (grid)
            {
                var images = Generate(model, count, settings.Seed, options, cancellationToken, labels: labels, guidance: guidance, onStep: onFrame);
                Pictures.ImageGrid(settings.Out!, images, columns, rowLabels, scale);
                CliContext.Out.WriteLine($"wrote a grid of {count} samples to {Path.GetFullPath(settings.Out!)}");
            }
            else
            {
                var batches = GenerateBatches(model, count, settings.Seed, options, cancellationToken, labels: labels, guidance: guidance, onStep: onFrame);
                SamplesFolder.Write(settings.Out!, batches, i => labels is null ? $"seed{settings.Seed}-{i:D5}.png" : $"seed{settings.Seed}-{i:D5}-class{labels[i]}.png");
                CliContext.Out.WriteLine($"wrote {count} PNG files to {Path.GetFullPath(settings.Out!)} (sample i of seed s is seed<s>-<i>.png: the same seed and number give the same image)");
            }
            if (settings.Animation is { } gif && animation is not null)
            {
                int gifColumns = labels is not null && only is null ? columns : (int)Math.Ceiling(Math.Sqrt(animation.Shown));
                int written = animation.Save(gif, gifColumns, settings.Scale ?? 1);
                CliContext.Out.WriteLine($"wrote the reverse process ({written} frames of the first {animation.Shown} samples, spaced by visible change) to {Path.GetFullPath(gif)} ({new FileInfo(gif).Length / 1024} KiB)");
            }
        }
        return 0;
    }

    /// <summary>A class given by number or by name (case-insensitive), with the list of classes when it is neither.</summary>
    public static long ParseClass(string value, DiffusionModel model)
    {
        var names = model.ClassNames;
        if (long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long k) && k < model.ClassCount) return k;
        for (int i = 0; i < names.Count; i++)
            if (string.Equals(names[i], value.Trim(), StringComparison.OrdinalIgnoreCase)) return i;
        throw new DiffuseException($"--class {value} is not a class of this model; give a number 0 … {model.ClassCount - 1} or a name: {string.Join(", ", names.Select((n, i) => $"{i} {n}"))}.");
    }

    /// <summary>Samples with a progress bar over the sampler's steps.</summary>
    public static Tensor Generate(DiffusionModel model, int count, ulong seed, Diffuse.Sampling.SamplerOptions options, CancellationToken cancellationToken,
        string label = "sample", Action<Diffuse.Sampling.SamplerStep>? onStep = null, IReadOnlyList<long>? labels = null, double guidance = 1.0)
    {
        var batches = new List<Tensor>();
        try
        {
            batches.AddRange(GenerateBatches(model, count, seed, options, cancellationToken, label, onStep, labels, guidance));
            return batches.Count == 1 ? batches[0].alias() : cat(batches, 0);
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }
    }

    /// <summary>
    /// The samples of <see cref="Generate"/> one batch at a time (each owned by the caller), with a progress bar over
    /// every batch's steps; <paramref name="onStep"/> sees the first batch's steps.
    /// </summary>
    public static IEnumerable<Tensor> GenerateBatches(DiffusionModel model, int count, ulong seed, Diffuse.Sampling.SamplerOptions options,
        CancellationToken cancellationToken, string label = "sample", Action<Diffuse.Sampling.SamplerStep>? onStep = null,
        IReadOnlyList<long>? labels = null, double guidance = 1.0)
    {
        int steps = options.StepCount(model.Schedule);
        int batch = model.IsImage ? DiffusionModel.DefaultImageBatch : DiffusionModel.DefaultTableBatch;
        int batches = (count + batch - 1) / batch;
        using var bar = new ProgressBar(label, (long)steps * batches, "step");
        long done = 0;
        int batchIndex = 0, batchesDone = 0;
        foreach (var samples in model.SampleBatches(count, seed, options, step =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            bar.Report(++done);
            if (step.Step == step.Count) batchIndex++;
            if (batchIndex == 0 || step.Step == step.Count && batchIndex == 1) onStep?.Invoke(step);
        }, classes: labels, guidance: guidance))
        {
            yield return samples;
            // A full collection every few batches: memory the last batches used and that only the collector releases
            // is freed before it accumulates, so a long run stays at the memory of a few batches.
            if (++batchesDone % 8 == 0)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }
    }
}
