namespace Diffuse.Cli;

/// <summary>
/// Finds a model given to <c>--model</c>: a folder written by <c>diffuse train</c>, or the name of a model shipped with
/// Diffuse (<see cref="ShippedModels"/>).
/// </summary>
public static class ModelFolders
{
    /// <summary>The folder of the shipped models next to the program.</summary>
    public static string ShippedRoot => ShippedModels.Root;

    /// <summary>Names of the shipped diffusion models.</summary>
    public static IReadOnlyList<string> Shipped => ShippedModels.Names;

    /// <summary>The folder to load for <paramref name="model"/>: the path itself when it exists, else a shipped model of that name.</summary>
    public static string Resolve(string model)
    {
        if (!string.IsNullOrWhiteSpace(model))
            try
            {
                return ShippedModels.Resolve(model);
            }
            catch (DiffuseException)
            {
                // The library's message speaks of folders; the command's names its option.
            }
        var names = Shipped;
        throw new DiffuseException($"model folder '{model}' does not exist. Give the --out folder of 'diffuse train'{(names.Count > 0 ? $" or a shipped model: {string.Join(", ", names)}" : "")}.");
    }
}
