namespace Diffuse;

/// <summary>
/// An error caused by the user's input (a missing or malformed file, a wrong shape, an unknown option, a checkpoint of
/// another model). Its message names the problem and what to do; the command-line tool prints it without a stack trace.
/// <para>
/// A message names the library's parameters through <see cref="Param.Of(string)"/> markers in its template:
/// <see cref="Message"/> shows them in the library's words (<c>TrainingConfig.Steps must be at least 1 (got 0).</c>),
/// and <see cref="Render"/> in a front end's (the command line shows <c>--steps must be at least 1 (got 0).</c>).
/// </para>
/// </summary>
public class DiffuseException : Exception
{
    /// <summary>Creates the error with a message that names the problem and what to do.</summary>
    /// <param name="message">The message; it may name parameters through <see cref="Param.Of(string)"/>.</param>
    public DiffuseException(string message) : base(message) { }

    /// <summary>Creates the error with a message and the lower-level cause.</summary>
    /// <param name="message">The message; it may name parameters through <see cref="Param.Of(string)"/>.</param>
    /// <param name="inner">The lower-level cause.</param>
    public DiffuseException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The message with every parameter in the library's words.</summary>
    public override string Message => Render(_ => null);

    /// <summary>
    /// The message as given, markers included: to build another <see cref="DiffuseException"/>'s message from this
    /// one without losing its parameter names.
    /// </summary>
    public string Template => base.Message;

    /// <summary>
    /// The message with every parameter named by <paramref name="nameFor"/>: it receives the parameter's library name
    /// (such as <c>TrainingConfig.Steps</c>) and returns the front end's words for it (such as <c>--steps</c>), in which
    /// <c>{0}</c> stands for the marker's argument, if it has one; null keeps the library's words.
    /// </summary>
    public string Render(Func<string, string?> nameFor)
    {
        ArgumentNullException.ThrowIfNull(nameFor);
        return Param.Render(Template, nameFor);
    }
}
