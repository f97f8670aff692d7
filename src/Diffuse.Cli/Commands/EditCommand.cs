using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse edit</c>.</summary>
public sealed class EditSettings : ImageEditingSettings
{
    /// <summary>Settings from the command line.</summary>
    public EditSettings()
    {
    }

    /// <summary>Settings given by a request to <c>diffuse serve</c> (internal: the command line builds settings by their one public constructor).</summary>
    internal EditSettings(EditingChoices choices) : base(choices)
    {
    }

    /// <summary>Strength.</summary>
    [CommandOption("--strength <S>")]
    [Description("How far towards pure noise the image is taken before it is denoised, in (0, 1]]: 0.3 keeps the shape and redraws detail, 1 keeps nothing (default 0.5).")]
    public double Strength { get; init; } = 0.5;
}

/// <summary><c>diffuse edit</c>: image-to-image by SDEdit (noise to a strength, denoise, optionally towards another class).</summary>
public sealed class EditCommand : Command<EditSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, EditSettings settings, CancellationToken cancellationToken)
    {
        EditingIo.CheckOut(settings.Out);
        ImageToImage.StepsAt(settings.Strength, 1);
        settings.EditingSampler();
        var (model, _) = settings.LoadModel("edit");
        using (model)
        {
            var plan = EditPlan.For(settings, model);
            using var scope = NewDisposeScope();
            var (images, labels, names) = EditingIo.Load(settings.Image!, model, settings.Resize, settings.Count, "--image");
            plan.Run(model, images, labels, names, Path.GetExtension(settings.Out!).Length > 0, EditingIo.Console(cancellationToken)).Save(settings.Out!);
        }
        return 0;
    }
}

/// <summary>
/// What <c>diffuse edit</c> (and the server's edit route) does with its options, checked against the model before any
/// work: SDEdit at --strength along the sampler's levels, towards --class (or the images' own classes) with --guidance.
/// </summary>
/// <param name="Options">The sampler.</param>
/// <param name="Path">Its σ-space path.</param>
/// <param name="Strength">The strength in (0, 1].</param>
/// <param name="Seed">The seed of the noise.</param>
/// <param name="Only">--class, or null.</param>
/// <param name="Guidance">The guidance scale.</param>
public sealed record EditPlan(SamplerOptions Options, EditingPath Path, double Strength, ulong Seed, long? Only, double Guidance)
{
    /// <summary>Checks <paramref name="settings"/> against <paramref name="model"/>.</summary>
    /// <exception cref="DiffuseException">An option is invalid (a strength outside (0, 1], say).</exception>
    public static EditPlan For(EditSettings settings, DiffusionModel model)
    {
        ImageToImage.StepsAt(settings.Strength, 1);
        var options = settings.EditingSampler();
        var path = EditingPath.Resolve(options, model.Schedule, deterministic: false);
        return new EditPlan(options, path, settings.Strength, settings.Seed, settings.ClassFor(model), settings.Guidance ?? SamplingDefaults.Guidance);
    }

    /// <summary>Network evaluations per image (at most the whole path's).</summary>
    public int Evaluations(DiffusionModel model) => Options.FunctionEvaluations(model.Schedule);

    /// <summary>
    /// Edits <paramref name="images"/> (model range; <paramref name="labels"/> from a labelled data set) into a grid of
    /// the sources above the edits (<paramref name="grid"/>), or one PNG per edit.
    /// </summary>
    public EditingOutput Run(DiffusionModel model, Tensor images, long[]? labels, IReadOnlyList<string> names, bool grid, EditingRun run)
    {
        int count = (int)images.shape[0], steps = ImageToImage.StepsAt(Strength, Path.Steps);
        long[]? classes = model.ClassCount == 0 ? null : Only is { } k ? Enumerable.Repeat(k, count).ToArray() : labels ?? Enumerable.Repeat(-1L, count).ToArray();
        string towards = model.ClassCount == 0 ? "" : Only is { } c ? $", towards class {c} ({model.ClassNames[(int)c]}), guidance {Guidance:0.##}" : labels is not null ? $", the images' classes, guidance {Guidance:0.##}" : ", unconditional";
        run.Log($"SDEdit of {count} images at strength {Strength:0.###}: the last {steps} of {SamplerSpacings.Describe(Options, model.Schedule)}, from σ = {Path.Sigmas[Path.Steps - steps]:G4}{towards}");
        var edited = run.Progress("edit", EditingIo.Total(steps, count), run.CancellationToken, (report, token) =>
            model.Edit(images, Strength, Seed, Options, classes, Guidance, report, cancellationToken: token));
        run.Log($"distance to the sources: {EditingIo.Reconstruction(images, edited)}");
        return grid
            ? EditingIo.Render(true, cat(new[] { images, edited }), names, count, new[] { "before", "after" })
            : EditingIo.Render(false, edited, names.Select(n => n + "-edited").ToArray(), count);
    }
}
